"""The capture plug-in's old name: it is workload/capture.py now (the workload imports it).

Kept because locustfiles do `import analysis.capture` (analysis/README.md); importing this
registers the plug-in, as importing workload.capture does.
"""

from workload.capture import (
    ENV_RUN_DIR,
    ERROR_CHARS,
    FLUSH_ROWS,
    FLUSH_SECONDS,
    Recorder,
    answer_of,
    default_run_dir,
    record_in_meta,
    run_dir_of,
)

__all__ = [
    "ENV_RUN_DIR",
    "ERROR_CHARS",
    "FLUSH_ROWS",
    "FLUSH_SECONDS",
    "Recorder",
    "answer_of",
    "default_run_dir",
    "record_in_meta",
    "run_dir_of",
]
