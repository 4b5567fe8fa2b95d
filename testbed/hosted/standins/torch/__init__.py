"""Import stand-in for PyTorch, which the hosted Archivist imports at start but its
web routes never use (core/scc_summarizer.py only asks whether CUDA is there).

Installing the real one would take gigabytes; the toolkit leaves ML packages out of the
app's venv (config/apps/archivist-flask.toml) and puts this folder first on its
PYTHONPATH. Anything beyond the attributes below fails loudly, naming this file.
"""

from __future__ import annotations

from typing import Any

float32 = "float32"
float16 = "float16"


class _Cuda:
    @staticmethod
    def is_available() -> bool:
        return False

    @staticmethod
    def device_count() -> int:
        return 0


cuda = _Cuda()


def __getattr__(name: str) -> Any:
    raise AttributeError(
        f"torch.{name}: this is the load toolkit's import stand-in for torch "
        f"({__file__}); the hosted app's ML features are not available"
    )
