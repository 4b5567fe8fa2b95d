"""Reading and checking request input at the edge; handlers then trust what they get.

`read_object` enforces the body limit on the declared Content-Length and on the bytes
actually streamed (a client may lie or send chunked), then demands a JSON object.
Field checks collect every problem so one 422 names all the bad fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from testbed.api.errors import ApiError

STATUSES = ("uploaded", "transcoding", "captioning", "publishing", "published", "failed")


async def read_object(request: Request, max_bytes: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise ApiError(400, f"Content-Length {declared!r} is not a number") from exc
        if size > max_bytes:
            raise ApiError(413, f"body of {size} bytes is over the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise ApiError(413, f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise ApiError(400, "body is empty; a JSON object is required")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(400, f"body must be a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "str" | "number" | "int"
    required: bool
    max_len: int = 0
    min_value: float = 0
    max_value: float = 0
    allow_empty: bool = False


VOD_FIELDS = (
    Field("title", "str", True, max_len=200),
    Field("description", "str", False, max_len=5000, allow_empty=True),
    Field("file_name", "str", True, max_len=255),
    Field("duration_s", "number", False, min_value=0, max_value=7 * 24 * 3600),
    Field("size_bytes", "int", False, min_value=0, max_value=2**53),
)


def _check(field: Field, value: Any) -> str | None:
    if field.kind == "str":
        if not isinstance(value, str):
            return f"{field.name}: must be a string"
        if not field.allow_empty and not value.strip():
            return f"{field.name}: must not be empty"
        if len(value) > field.max_len:
            return f"{field.name}: at most {field.max_len} characters"
        return None
    if value is None:
        return None  # optional numbers may be null
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if field.kind == "int" and not is_int:
        return f"{field.name}: must be an integer"
    if field.kind == "number" and not (is_int or isinstance(value, float)):
        return f"{field.name}: must be a number"
    if not field.min_value <= value <= field.max_value:
        return f"{field.name}: must be between {field.min_value:g} and {field.max_value:g}"
    return None


def _raise(problems: list[str]) -> None:
    if problems:
        raise ApiError(
            422,
            "; ".join(problems),
            [{"field": p.split(":", 1)[0], "message": p.split(": ", 1)[1]} for p in problems],
        )


def vod_create(body: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in VOD_FIELDS}
    problems = [f"{k}: unknown field" for k in sorted(set(body) - known)]
    for field in VOD_FIELDS:
        if field.name not in body:
            if field.required:
                problems.append(f"{field.name}: is required")
            continue
        if (problem := _check(field, body[field.name])) is not None:
            problems.append(problem)
    _raise(problems)
    return {
        "title": body["title"],
        "description": body.get("description", ""),
        "file_name": body["file_name"],
        "duration_s": body.get("duration_s"),
        "size_bytes": body.get("size_bytes"),
    }


def vod_patch(body: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f for f in VOD_FIELDS}
    problems = [f"{k}: unknown or read-only field" for k in sorted(set(body) - set(known))]
    for name, value in body.items():
        if name in known and (problem := _check(known[name], value)) is not None:
            problems.append(problem)
    if not body:
        problems.append(f"body: give at least one of {', '.join(known)}")
    _raise(problems)
    return body


def if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        _raise([f"If-Match: must be the VOD's integer version, got {raw!r}"])
    return int(text)


def int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        _raise([f"{name}: must be an integer between {low} and {high}, got {raw!r}"])
    return int(raw)


def status_query(request: Request) -> str | None:
    raw = request.query_params.get("status")
    if raw in (None, ""):
        return None
    if raw not in STATUSES:
        _raise([f"status: must be one of {', '.join(STATUSES)}, got {raw!r}"])
    return raw


def path_id(request: Request) -> int:
    raw = str(request.path_params["id"])
    if not raw.isdigit() or int(raw) >= 2**63:
        raise ApiError(404, f"no VOD with id {raw!r}")
    return int(raw)
