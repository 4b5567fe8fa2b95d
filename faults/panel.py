"""The Faults tab's old place: the panel is locustfiles/panel.py now.

Kept so that `locust -f locustfiles/vod.py,faults/panel.py` and `import faults.panel` keep
working; importing this registers the panel, as importing locustfiles.panel does. This is
the one import from faults up into locustfiles, and it is only for this alias.
"""

from locustfiles.panel import (
    SCRIPT,
    STATE_TTL_S,
    TAB_KEY,
    Panel,
    PanelError,
    attributes_text,
    default_faults_url,
    fault_text,
    install,
    parse_request,
)

__all__ = [
    "SCRIPT",
    "STATE_TTL_S",
    "TAB_KEY",
    "Panel",
    "PanelError",
    "attributes_text",
    "default_faults_url",
    "fault_text",
    "install",
    "parse_request",
]
