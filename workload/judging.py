"""What an acceptable answer is, and the outcomes a request or a task can have.

Every request states the statuses it expects; anything else (and every 5xx) is a failure,
and an expected error must have the contract's shape ``{"error": {"code", "message",
...}}`` with the expected code (or, for a profile with ``error_shape = "flat"``, the Flask
Archivist's ``{"error": "<text>"}`` or an HTML page). A failure is reported as one of the
outcomes here: a 429 as ``RateLimited``, an answer the route profile lists as the app's
own defect as ``KnownDefect``, anything else as Locust's ``CatchResponseError``. A task
that needs a route the deployment lacks ends in ``SkippedTask``, a multi-step workflow
that did not reach its goal in ``WorkflowFailed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from locust.exception import CatchResponseError, RescheduleTask


class SkippedTask(RescheduleTask):
    """The deployment lacks a route this task needs: the task is skipped, not failed."""


class RateLimited(CatchResponseError):
    """429: the service's rate limit, an outcome of its own in the failure statistics."""


class KnownDefect(CatchResponseError):
    """An answer the route profile lists as the app's own defect (``[defects]``), counted
    apart from the failures the workload cannot explain."""


class WorkflowFailed(Exception):
    """A multi-step workflow did not reach its goal; reported on its WORKFLOW entry."""


_UNPARSED: Any = object()


@dataclass(slots=True)
class Reply:
    """One answer: status, body, and whether it was as expected.

    The JSON body is parsed on first use: most successful reads are never looked into,
    and parsing them all would be most of the plumbing's cost per request. (Not with
    functools.cached_property: on Python 3.11 it takes a lock at every first use.)
    """

    status: int
    content: bytes | None
    ok: bool
    problem: str = ""
    _body: Any = field(default=_UNPARSED, repr=False, compare=False)
    headers: Any = field(default=None, repr=False, compare=False)

    @property
    def body(self) -> Any:
        if self._body is _UNPARSED:
            self._body = parse_json(self.content)
        return self._body

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default) if isinstance(self.body, dict) else default


def error_shape_problem(body: Any, code: str | None) -> str:
    """'' if `body` is the contract's error shape (with `code`, when given), else why not."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return 'error body is not {"error": {...}}'
    if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
        return "error lacks string code/message"
    if code is not None and err["code"] != code:
        return f"error code {err['code']!r}, expected {code!r}"
    return ""


def flat_error_problem(reply: Reply) -> str:
    """'' if an error answer has the Flask Archivist's shape: {"error": "<text>", ...} or an
    HTML page (what Flask and its extensions answer on their own), else why not."""
    if (reply.content or b"").lstrip()[:1] == b"<":
        return ""
    err = reply.body.get("error") if isinstance(reply.body, dict) else None
    return "" if isinstance(err, str) else 'error body is neither {"error": "<text>"} nor HTML'


def judge(reply: Reply, expect: Iterable[int], code: str | None, shape: str = "contract") -> str:
    """Why an answer is unacceptable ('' if acceptable)."""
    if reply.status < 400 and reply.status in expect:
        return ""  # the common case, kept cheap
    expected = tuple(expect)
    if reply.status not in expected:
        snippet = (reply.content or b"")[:200].decode("utf-8", "replace")
        return f"status {reply.status}, expected {'/'.join(map(str, expected))} {snippet}".strip()
    if reply.status >= 400:
        if shape == "flat":
            return flat_error_problem(reply)
        return error_shape_problem(reply.body, code)
    return ""


_decode_json = json.JSONDecoder().decode


def parse_json(content: bytes | None) -> Any:
    """The JSON value of a body, None if there is none or it is not JSON."""
    if not content:
        return None
    try:
        return _decode_json(content.decode())  # UTF-8, as JSON over HTTP is
    except ValueError:
        pass
    try:
        return json.loads(content)  # the other encodings json accepts (UTF-16/32, a BOM)
    except ValueError:
        return None
