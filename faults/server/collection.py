"""All proxies of one server and the operations the API performs on them."""

from __future__ import annotations

import asyncio
import contextlib

from faults.server.errors import ApiError
from faults.server.model import ProxyPatch, ProxySpec, ToxicEntry
from faults.server.proxy import Proxy, format_address, resolve_listen


class Collection:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.proxies: dict[str, Proxy] = {}
        # Mutations await (binding, resolving): one at a time keeps them atomic.
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(404, "proxy not found")
        return proxy

    async def create(self, spec: ProxySpec) -> Proxy:
        async with self.lock:
            if spec.name in self.proxies:
                raise ApiError(409, "proxy already exists")
            proxy = Proxy(spec, self.seed)
            if spec.enabled:
                await proxy.start()
            else:
                host, port = await resolve_listen(spec.listen)
                proxy.listen = format_address(host, port)
            self.proxies[spec.name] = proxy
            return proxy

    async def update(self, name: str, patch: ProxyPatch) -> Proxy:
        async with self.lock:
            proxy = self.get(name)
            listen = proxy.listen
            if patch.listen is not None:
                host, port = await resolve_listen(patch.listen)
                if port != 0 and format_address(host, port) == proxy.listen:
                    listen = proxy.listen
                else:
                    listen = patch.listen
            upstream = patch.upstream or proxy.upstream
            enabled = proxy.enabled if patch.enabled is None else patch.enabled
            moved = listen != proxy.listen or upstream != proxy.upstream
            if proxy.enabled and (moved or not enabled):
                await proxy.stop()
            old = (proxy.listen, proxy.upstream)
            proxy.listen, proxy.upstream = listen, upstream
            if enabled and not proxy.enabled:
                try:
                    await proxy.start()
                except ApiError:
                    proxy.listen, proxy.upstream = old
                    with contextlib.suppress(ApiError):
                        await proxy.start()
                    raise
            elif moved and not proxy.enabled:
                host, port = await resolve_listen(listen)
                proxy.listen = format_address(host, port)
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            await proxy.stop()
            del self.proxies[name]

    async def populate(self, specs: list[ProxySpec]) -> list[Proxy]:
        """Keep proxies whose listen and upstream are unchanged; replace the others."""
        async with self.lock:
            resolved = [await resolve_listen(spec.listen) for spec in specs]  # validate all
            result = []
            for spec, (host, port) in zip(specs, resolved, strict=True):
                existing = self.proxies.get(spec.name)
                if (
                    existing is not None
                    and port != 0
                    and format_address(host, port) == existing.listen
                    and spec.upstream == existing.upstream
                ):
                    result.append(existing)
                    continue
                if existing is not None:
                    await existing.stop()
                    del self.proxies[spec.name]
                proxy = Proxy(spec, self.seed)
                if spec.enabled:
                    await proxy.start()
                else:
                    proxy.listen = format_address(host, port)
                self.proxies[spec.name] = proxy
                result.append(proxy)
            return result

    async def reset(self) -> None:
        """Every proxy enabled again and every toxic removed."""
        async with self.lock:
            for proxy in self.proxies.values():
                proxy.set_toxics({})
                if not proxy.enabled:
                    await proxy.start()

    async def shutdown(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()

    # ---- toxics ---------------------------------------------------------------------------

    def toxic(self, proxy_name: str, toxic_name: str) -> ToxicEntry:
        entry = self.get(proxy_name).toxics.get(toxic_name)
        if entry is None:
            raise ApiError(404, "toxic not found")
        return entry

    def add_toxic(self, proxy_name: str, entry: ToxicEntry) -> ToxicEntry:
        proxy = self.get(proxy_name)
        if entry.name in proxy.toxics:
            raise ApiError(409, "toxic already exists")
        proxy.set_toxics({**proxy.toxics, entry.name: entry})
        return entry

    def replace_toxic(self, proxy_name: str, entry: ToxicEntry) -> ToxicEntry:
        proxy = self.get(proxy_name)
        proxy.set_toxics({**proxy.toxics, entry.name: entry})
        return entry

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        self.toxic(proxy_name, toxic_name)
        proxy = self.get(proxy_name)
        proxy.set_toxics({k: v for k, v in proxy.toxics.items() if k != toxic_name})
