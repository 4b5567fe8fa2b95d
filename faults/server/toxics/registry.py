"""Toxic types by name: the only way the proxy, the link and the API know toxics.

A toxic is a dataclass whose int fields are its JSON attributes, with one coroutine
``pipe(stub)`` that moves chunks. ``@toxic("name")`` registers it. A toxic may opt in
to ``closes_on_removal = True``: removing it closes the connections it applied to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from faults.server.errors import ApiError
from faults.server.pipeline import Stub

INT_MAX = 2**53  # JSON numbers beyond this lose precision; no sane toxic needs more


class Toxic(Protocol):
    async def pipe(self, stub: Stub) -> None: ...


T = TypeVar("T")

REGISTRY: dict[str, type[Any]] = {}


def toxic(name: str) -> Callable[[type[T]], type[T]]:
    """Register a toxic dataclass under its API type name."""

    def register(cls: type[T]) -> type[T]:
        if name in REGISTRY:
            raise ValueError(f"toxic type {name!r} registered twice")
        REGISTRY[name] = cls
        return cls

    return register


def attr(default: int = 0) -> Any:
    """An int attribute. Every attribute of every toxic is a size, a rate or a duration,
    so the API takes 0..INT_MAX for all of them alike (Toxiproxy checks no range at all,
    and crashes on some negatives)."""
    return dataclasses.field(default=default)


def build(type_name: str, values: Mapping[str, Any], base: Any = None) -> Any:
    """A toxic of ``type_name`` from JSON ``values`` merged over ``base``; unknown keys ignored."""
    cls = REGISTRY.get(type_name)
    if cls is None:
        raise ApiError(400, "invalid toxic type")
    current = dataclasses.asdict(base) if base is not None else {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:
            raise ApiError(
                400, f"bad request body: attribute {field.name} must be an integer, got {value!r}"
            )
        if not 0 <= value <= INT_MAX:
            raise ApiError(
                400, f"bad request body: attribute {field.name} must be in [0, {INT_MAX}]"
            )
        current[field.name] = value
    return cls(**current)


def attributes(instance: Any) -> dict[str, Any]:
    return dataclasses.asdict(instance)


def closes_on_removal(instance: Any) -> bool:
    return bool(getattr(instance, "closes_on_removal", False))
