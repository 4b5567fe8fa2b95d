"""The fault proxies' wiring: where each proxy listens and points, and URLs through them.

The apps reach PostgreSQL, Redis and Cablecast only through these proxies, so every
fault hits a real link; this module is the one place that rewrites addresses for it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from faults.client import ProxyConfigError, load_proxies
from testbed.processes import StackError
from testbed.stack_settings import StackSettings


def proxy_config(settings: StackSettings) -> list[dict[str, object]]:
    """config/proxies.json with listen/upstream rewritten to this stack's addresses."""
    s = settings
    try:
        entries = load_proxies(s.proxies_file)
    except ProxyConfigError as exc:
        raise StackError(str(exc)) from None
    upstreams = {
        "postgres": address(s.database_url, s.host, s.ports["postgres"]),
        "redis": address(s.redis_url, s.host, s.ports["redis"]),
        "cablecast": f"{s.host}:{s.ports['cablecast']}",
    }
    missing = sorted(set(upstreams) - {e["name"] for e in entries})
    if missing:
        raise StackError(
            f"{s.proxies_file}: no proxy for {', '.join(missing)}; the app reaches "
            "postgres, redis and cablecast only through proxies of those names"
        )
    for entry in entries:
        name = entry["name"]
        if name in upstreams:
            entry["listen"] = f"{s.host}:{s.proxy_ports[name]}"
            entry["upstream"] = upstreams[name]
            entry["enabled"] = True
    return list(entries)


def address(url: str | None, host: str, port: int) -> str:
    """host:port of an external server's URL, else of ours."""
    if url is None:
        return f"{host}:{port}"
    parts = urlsplit(url)
    default = 5432 if parts.scheme.startswith("postgres") else 6379
    return f"{parts.hostname}:{parts.port or default}"


def with_address(url: str, host: str, port: int) -> str:
    """`url` with its host:port replaced (user, password, path and query kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
