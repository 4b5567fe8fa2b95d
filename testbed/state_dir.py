"""Throwaway state dirs for stacks started by tests and experiments.

Kept apart from the orchestrator: callers that only need a place for a stack's state
(analysis, tests) should not have to think about how a stack runs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def temporary_state_dir(prefix: str = "testbed-stack-") -> Iterator[Path]:
    """A fresh state dir for a throwaway stack (tests, experiments), removed afterwards.

    In the system temp dir, not under pytest's tmp_path: as root, PostgreSQL runs as an
    unprivileged user who must traverse the whole path, and every pytest session resets
    /tmp/pytest-of-root to mode 0700 (several sessions may run side by side).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
