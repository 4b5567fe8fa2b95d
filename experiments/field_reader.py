"""Reading one table of a TOML file, with errors that name the file and the dotted field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.errors import ExperimentError
from experiments.written_values import parse_duration


class FieldReader:
    """Field access with errors that name the file and the dotted field path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> ExperimentError:
        return ExperimentError(f"{self.path}: {where}{' ' if where else ''}{message}")

    def table(self, data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(field_path(where, key), f"must be a table, got {kind_of(value)}")
        return value

    def only(self, data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(
                    field_path(where, key), f"is not a known field; known: {', '.join(allowed)}"
                )

    def require(self, data: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in data:
            raise self.fail(field_path(where, key), "is missing")
        return data[key]

    def duration(self, data: Mapping[str, Any], key: str, where: str, default: Any = None) -> float:
        raw = data.get(key, default)
        if raw is None:
            raise self.fail(field_path(where, key), "is missing")
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise self.fail(field_path(where, key), str(exc)) from None

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        default: float | None = None,
        low: float = 0.0,
        high: float = math.inf,
        integer: bool = False,
    ) -> float:
        raw: Any = data.get(key, default)
        if raw is None:
            raise self.fail(field_path(where, key), "is missing")
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | float)
            or (integer and not isinstance(raw, int))
        ):
            wanted = "an integer" if integer else "a number"
            raise self.fail(field_path(where, key), f"must be {wanted}, got {kind_of(raw)}")
        if not low <= raw <= high:
            raise self.fail(field_path(where, key), f"{raw} is outside {low:g}..{high:g}")
        return float(raw)

    def strings(self, data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        raw = data.get(key, [])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise self.fail(field_path(where, key), "must be a list of strings")
        return tuple(raw)


def field_path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def kind_of(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
