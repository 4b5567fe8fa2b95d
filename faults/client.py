"""The one way the toolkit talks to a Toxiproxy server, embedded or real.

Built on the `toxiproxy-python` package: its exception classes are the bases of ours,
so code written for that package (`except NotFound`) keeps working, and its object
model (`Toxiproxy`, `Proxy`) is checked against our server by the compatibility
tests. Its transport is not used, and this is the one place where that is decided:

- host and port are class attributes of `APIConsumer`, so two servers in one process
  overwrite each other;
- requests are sent without a timeout, so a server that accepts and never answers
  hangs the caller forever;
- a 500 is not an error there (the caller gets a `KeyError` from the JSON later);
- `populate` deletes and recreates proxies one by one instead of POST /populate;
- a toxic cannot be updated.

`FaultClient` keeps its own URL and HTTP connection pool, bounds every request by a
timeout, and maps every non-2xx answer to `FaultServerError` with the server's message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from toxiproxy import exceptions as tp_exceptions

DEFAULT_URL = "http://127.0.0.1:8474"
ENV_URL = "TOXIPROXY_URL"


class FaultServerError(Exception):
    """A Toxiproxy server refused a request; `status` and `message` are the server's.

    `status` is None when no HTTP answer came (see `FaultServerUnavailable`).
    """

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message


class FaultServerUnavailable(FaultServerError):
    """No answer from the server: connection refused, reset or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(None, f"Toxiproxy server at {url} is unavailable: {reason}")
        self.url = url


class FaultNotFound(FaultServerError, tp_exceptions.NotFound):
    """404: proxy not found / toxic not found."""


class FaultConflict(FaultServerError, tp_exceptions.ProxyExists):
    """409: proxy already exists / toxic already exists."""


class FaultBadRequest(FaultServerError, tp_exceptions.InvalidToxic):
    """400: malformed body, missing field, invalid toxic type or stream."""


_UPDATABLE = {"enabled", "listen", "upstream"}

_ERRORS_BY_STATUS: dict[int, type[FaultServerError]] = {
    400: FaultBadRequest,
    404: FaultNotFound,
    409: FaultConflict,
}


class ProxyConfigError(ValueError):
    """A proxies file (Toxiproxy's `-config` format) is malformed; the message says where."""


@dataclass(frozen=True)
class ToxicInfo:
    """One toxic as the server reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToxicInfo:
        return cls(
            name=data["name"],
            type=data["type"],
            stream=data.get("stream", "downstream"),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True)
class ProxyInfo:
    """One proxy as the server reports it; `listen` is the bound address."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[ToxicInfo] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProxyInfo:
        return cls(
            name=data["name"],
            listen=data["listen"],
            upstream=data["upstream"],
            enabled=bool(data["enabled"]),
            toxics=[ToxicInfo.from_json(t) for t in data.get("toxics") or []],
        )

    @property
    def listen_host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_host_port(self.listen)[1]


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port"); ValueError with the address if malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'"{address}" is not host:port')
    return host.strip("[]"), int(port)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'Toxiproxy URL "{url}" must look like http://HOST:PORT')
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f'Toxiproxy URL "{url}" has a bad port: {exc}') from None
    return url.rstrip("/")


class FaultClient:
    """Client for one Toxiproxy server (the HTTP API of Toxiproxy 2.x).

    Each instance has its own URL and connection pool, so several servers can be driven
    from one process. Every request is bounded by `timeout` seconds.
    """

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 5.0) -> None:
        self.url = _check_url(url)
        self.timeout = timeout
        # The real server refuses browser user agents (403); say who we are.
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"User-Agent": "archivist-loadkit-faults"},
            trust_env=False,  # a proxy from the environment must never sit in between
        )

    @classmethod
    def from_env(cls, default: str = DEFAULT_URL, timeout: float = 5.0) -> FaultClient:
        """Use $TOXIPROXY_URL when set, else `default`."""
        return cls(os.environ.get(ENV_URL) or default, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FaultClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultClient({self.url!r})"

    # -- transport -------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Send one request; no answer at all becomes `FaultServerUnavailable`."""
        try:
            if body is None:
                return self._http.request(method, path)
            return self._http.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise FaultServerUnavailable(
                self.url, f"no answer to {method} {path} within {self.timeout:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise FaultServerUnavailable(self.url, f"{type(exc).__name__}: {exc}") from exc

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; return the decoded JSON body (None when empty)."""
        response = self._send(method, path, body)
        if not response.is_success:
            raise _error_from(response)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise FaultServerError(
                response.status_code,
                f"{method} {path}: answer is not JSON: {response.text[:200]!r}",
            ) from None

    # -- server ----------------------------------------------------------------------

    def link_bytes(self) -> dict[str, dict[str, int]]:
        """Bytes read so far per proxy and direction, from `/metrics` (Prometheus text).

        FaultServerError when the server has no metrics (a Toxiproxy without them)."""
        from faults.linkbytes import parse_metrics

        response = self._send("GET", "/metrics")
        if not response.is_success:
            raise FaultServerError(response.status_code, f"GET /metrics: {response.text[:200]!r}")
        try:
            return parse_metrics(response.text)
        except ValueError as exc:
            raise FaultServerError(response.status_code, f"GET /metrics: {exc}") from None

    def version(self) -> str:
        """The server's version string (JSON since 2.x; plain text on old servers)."""
        response = self._send("GET", "/version")
        if not response.is_success:
            raise _error_from(response)
        try:
            data = response.json()
        except ValueError:
            return response.text.strip()
        return str(data["version"]) if isinstance(data, dict) else str(data)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._request("POST", "/reset")

    # -- proxies ---------------------------------------------------------------------

    def proxies(self) -> dict[str, ProxyInfo]:
        data = self._request("GET", "/proxies")
        return {name: ProxyInfo.from_json(p) for name, p in data.items()}

    def proxy(self, name: str) -> ProxyInfo:
        return ProxyInfo.from_json(self._request("GET", _proxy_path(name)))

    def populate(self, proxies: list[dict[str, Any]]) -> list[ProxyInfo]:
        """Create or update proxies in one request (POST /populate).

        Idempotent on the server: a proxy whose listen and upstream are unchanged is kept
        with its toxics and open connections; proxies not named are left alone.
        """
        data = self._request("POST", "/populate", list(proxies))
        return [ProxyInfo.from_json(p) for p in data["proxies"]]

    def create_proxy(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> ProxyInfo:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyInfo.from_json(self._request("POST", "/proxies", body))

    def update_proxy(self, name: str, **fields: Any) -> ProxyInfo:
        """Change listen, upstream and/or enabled; omitted fields keep their values."""
        unknown = sorted(set(fields) - _UPDATABLE)
        if unknown:
            # The server ignores unknown fields; a typo must not pass as a no-op.
            raise ValueError(
                f"update_proxy: unknown field {unknown[0]!r}; known: enabled, listen, upstream"
            )
        return ProxyInfo.from_json(self._request("PATCH", _proxy_path(name), fields))

    def delete_proxy(self, name: str) -> None:
        self._request("DELETE", _proxy_path(name))

    def enable(self, name: str) -> None:
        self.update_proxy(name, enabled=True)

    def disable(self, name: str) -> None:
        """Close the listener and every open connection: new connects are refused."""
        self.update_proxy(name, enabled=False)

    # -- toxics ----------------------------------------------------------------------

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        """Upstream chain first, then downstream, each in insertion order."""
        data = self._request("GET", f"{_proxy_path(proxy)}/toxics")
        return [ToxicInfo.from_json(t) for t in data]

    def toxic(self, proxy: str, name: str) -> ToxicInfo:
        return ToxicInfo.from_json(self._request("GET", _toxic_path(proxy, name)))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any] | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> ToxicInfo:
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        if name is not None:
            body["name"] = name
        return ToxicInfo.from_json(self._request("POST", f"{_proxy_path(proxy)}/toxics", body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> ToxicInfo:
        """Merge `attributes` into the toxic's and/or set its toxicity; type and stream stay."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        return ToxicInfo.from_json(self._request("PATCH", _toxic_path(proxy, name), body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._request("DELETE", _toxic_path(proxy, name))


def _proxy_path(name: str) -> str:
    return f"/proxies/{quote(name, safe='')}"


def _toxic_path(proxy: str, name: str) -> str:
    return f"{_proxy_path(proxy)}/toxics/{quote(name, safe='')}"


def _error_from(response: httpx.Response) -> FaultServerError:
    """Map a non-2xx answer to an exception carrying the server's own message."""
    message = response.text.strip() or response.reason_phrase
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message = data["error"]
    request = response.request
    error_type = _ERRORS_BY_STATUS.get(response.status_code, FaultServerError)
    error = error_type(response.status_code, message)
    error.args = (f"{request.method} {request.url.path} -> {response.status_code}: {message}",)
    return error


# -- proxies file ----------------------------------------------------------------------

_PROXY_FIELDS = {"name": str, "listen": str, "upstream": str, "enabled": bool}


def load_proxies(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a proxies file (the JSON array of Toxiproxy's `-config`).

    Returns entries ready for `FaultClient.populate`; `listen` defaults to
    127.0.0.1:0 and `enabled` to true. Errors name the file, entry and field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProxyConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ProxyConfigError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, list):
        raise ProxyConfigError(f"{path}: must be a JSON array of proxies, got {_kind(data)}")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(data):
        entry = _check_entry(path, index, raw)
        if entry["name"] in seen:
            raise ProxyConfigError(f'{path}: [{index}] "{entry["name"]}": duplicate name')
        seen.add(entry["name"])
        entries.append(entry)
    return entries


def _check_entry(path: Path, index: int, raw: Any) -> dict[str, Any]:
    where = f"{path}: [{index}]"
    if not isinstance(raw, dict):
        raise ProxyConfigError(f"{where}: must be an object, got {_kind(raw)}")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f'{where} "{name}"'
    unknown = sorted(set(raw) - set(_PROXY_FIELDS))
    if unknown:
        known = ", ".join(_PROXY_FIELDS)
        raise ProxyConfigError(f"{where}: unknown field {unknown[0]!r}; known: {known}")
    for key in ("name", "upstream"):
        if key not in raw:
            raise ProxyConfigError(f'{where}: missing required field "{key}"')
    for key, kind in _PROXY_FIELDS.items():
        if key in raw and not isinstance(raw[key], kind):
            raise ProxyConfigError(
                f'{where}: field "{key}" must be a {kind.__name__}, got {_kind(raw[key])}'
            )
    if not raw["name"].strip():
        raise ProxyConfigError(f'{where}: field "name" must not be empty')
    entry = {"listen": "127.0.0.1:0", "enabled": True, **raw}
    for key in ("listen", "upstream"):
        try:
            split_host_port(entry[key])
        except ValueError as exc:
            raise ProxyConfigError(f'{where}: field "{key}": {exc}') from None
    return entry


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
