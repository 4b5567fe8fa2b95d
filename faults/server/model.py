"""Request bodies checked at the edge: every malformed input becomes a 400 ApiError."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from faults.server.errors import ApiError
from faults.server.toxics import registry

STREAMS = ("upstream", "downstream")


@dataclass(frozen=True)
class ProxySpec:
    name: str
    listen: str
    upstream: str
    enabled: bool = True


@dataclass
class ToxicEntry:
    """A toxic as the API knows it; ``toxic`` is the registered dataclass instance."""

    name: str
    type: str
    stream: str
    toxicity: float
    toxic: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": registry.attributes(self.toxic),
        }


def bad(message: str) -> ApiError:
    return ApiError(400, f"bad request body: {message}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise bad("EOF")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise bad(str(exc) or type(exc).__name__) from None


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad(f"{what} must be a JSON object, got {type(body).__name__}")
    return body


def _string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"field {key} must be a string")
    return value


def _bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad(f"field {key} must be true or false")
    return value


def split_address(text: str, field: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); the port may be 0."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise bad(f"{field} {text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def proxy_spec(body: Any) -> ProxySpec:
    body = _object(body, "proxy")
    name = _string(body, "name")
    if not name:
        raise ApiError(400, "missing required field: name")
    upstream = _string(body, "upstream")
    if not upstream:
        raise ApiError(400, "missing required field: upstream")
    split_address(upstream, "upstream")
    listen = _string(body, "listen") or "127.0.0.1:0"
    split_address(listen, "listen")
    enabled = _bool(body, "enabled")
    return ProxySpec(name, listen, upstream, True if enabled is None else enabled)


def proxy_specs(body: Any) -> list[ProxySpec]:
    """The populate body and the --config file: a bare JSON array of proxies, names
    unique. A ``{"proxies": [...]}`` wrapper is refused, as Toxiproxy refuses it: a body
    that only works here would break against a real server."""
    if not isinstance(body, list):
        raise bad(f"expected a JSON array of proxies, got {type(body).__name__}")
    specs = [proxy_spec(entry) for entry in body]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad(f"proxy {duplicates[0]!r} appears more than once")
    return specs


@dataclass(frozen=True)
class ProxyPatch:
    listen: str | None
    upstream: str | None
    enabled: bool | None


def proxy_patch(body: Any) -> ProxyPatch:
    body = _object(body, "proxy")
    listen = _string(body, "listen") or None
    upstream = _string(body, "upstream") or None
    if listen is not None:
        split_address(listen, "listen")
    if upstream is not None:
        split_address(upstream, "upstream")
    return ProxyPatch(listen, upstream, _bool(body, "enabled"))


def _toxicity(body: dict[str, Any], default: float) -> float:
    value = body.get("toxicity")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad("field toxicity must be a number")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise bad("field toxicity must be between 0 and 1")
    return float(value)


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("attributes")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad("field attributes must be a JSON object")
    return value


def toxic_entry(body: Any) -> ToxicEntry:
    body = _object(body, "toxic")
    type_name = body.get("type")
    if not isinstance(type_name, str) or type_name not in registry.REGISTRY:
        raise ApiError(400, "invalid toxic type")
    stream = _string(body, "stream") or "downstream"
    if stream.lower() not in STREAMS:
        raise ApiError(400, "stream was invalid, can be either upstream or downstream")
    stream = stream.lower()
    name = _string(body, "name") or f"{type_name}_{stream}"
    toxicity = _toxicity(body, 1.0)
    toxic = registry.build(type_name, _attributes(body))
    return ToxicEntry(name, type_name, stream, toxicity, toxic)


def toxic_update(body: Any, entry: ToxicEntry) -> ToxicEntry:
    """Only attributes (merged) and toxicity change, as in Toxiproxy."""
    body = _object(body, "toxic")
    toxicity = _toxicity(body, entry.toxicity)
    toxic = registry.build(entry.type, _attributes(body), base=entry.toxic)
    return ToxicEntry(entry.name, entry.type, entry.stream, toxicity, toxic)
