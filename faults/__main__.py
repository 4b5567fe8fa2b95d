"""`python -m faults ...`: the old name of `python -m experiments ...` (deprecated, still works).

Every subcommand (run, list, check, cleanup, resilience, scorecard, audit) behaves as
before; the experiment engine moved out of the fault layer into the experiments package.
"""

import sys

# The one allowed import from faults up into experiments: this alias. The fault layer does
# not know the engine that uses it (faults/panel.py still imports experiments.timeline
# until it moves out of faults).
from experiments.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m faults"))
