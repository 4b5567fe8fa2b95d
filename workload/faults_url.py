"""--faults-url, the one option two plug-ins read: the workloads' bytes per link
(workload/links.py) and the web UI's Faults panel (locustfiles/panel.py).

A module of its own, with no Locust listeners, so the panel can register the option without
pulling in the workload's plug-ins; registered once whichever of the two loads first, since
`-f locustfiles/vod.py,locustfiles/panel.py` loads both and argparse refuses a second.
"""

from __future__ import annotations

from typing import Any

from faults.client import ENV_URL


def add_faults_url(parser: Any) -> None:
    if "--faults-url" in parser._option_string_actions:
        return
    parser.add_argument(
        "--faults-url",
        default="",
        include_in_web_ui=False,
        help="Fault server (Toxiproxy API): its /metrics give the bytes per link of the run, "
        f"and the web UI's Faults panel drives it (default ${ENV_URL}, else the reference "
        "stack's)",
    )
