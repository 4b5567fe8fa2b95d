"""Toxiproxy's toxic types as the toolkit writes them: attributes, units, and what makes one act.

The vocabulary of a fault on a link, shared by experiment files (experiments.experiment_file),
the experiment runner and the web UI's faults panel: a toxic type of the protocol (see
toxiproxy-api.md) or `down` (the whole proxy disabled), its attributes and their units, and
the checks the fault server makes on them, plus one of its own: a toxic that would do
nothing is refused rather than recorded as a fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOWN = "down"
# Toxiproxy's toxic types and their attributes (the protocol, see toxiproxy-api.md).
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
}
TOXICS = (*TOXIC_ATTRIBUTES, DOWN)
# The unit of each attribute, for people: labels in the panel, text like "latency=300ms".
ATTRIBUTE_UNITS: dict[str, dict[str, str]] = {
    "latency": {"latency": "ms", "jitter": "ms"},
    "bandwidth": {"rate": "KB/s"},
    "slow_close": {"delay": "ms"},
    "timeout": {"timeout": "ms"},
    "reset_peer": {"timeout": "ms"},
    "slicer": {"average_size": "B", "size_variation": "B", "delay": "us"},
    "limit_data": {"bytes": "B"},
}
# Toxics that pass data unchanged unless one of these attributes is above 0 (latency 0,
# bandwidth rate 0 = unlimited, slow_close delay 0): injecting one would record a fault
# window for a fault that did nothing. A timeout, reset_peer or limit_data of 0 does act.
EFFECT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
}
ATTRIBUTE_MAX = 2**53  # as the fault server (faults/server/toxics/registry.py INT_MAX)
STREAMS = ("downstream", "upstream")


def attribute_problem(toxic: str, attributes: Mapping[str, Any]) -> tuple[str, str] | None:
    """What is wrong with a toxic's attributes, as (field, message); None when they are fine.

    The same rules as the fault server (whole numbers from 0 to 2**53), plus: a toxic
    that would do nothing (EFFECT_ATTRIBUTES) is refused rather than recorded as a fault.
    """
    known = TOXIC_ATTRIBUTES.get(toxic, ())
    units = ATTRIBUTE_UNITS.get(toxic, {})
    for key, value in attributes.items():
        where = f"attributes.{key}"
        if key not in known:
            choices = ", ".join(known) if known else "none (down takes no attributes)"
            return where, f"is not an attribute of {toxic}; known: {choices}"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return where, f"must be a whole number of {units[key]}, got {value!r}"
        if not 0 <= value <= ATTRIBUTE_MAX:
            return where, f"is {value}; it must be from 0 to {ATTRIBUTE_MAX} ({units[key]})"
    needed = EFFECT_ATTRIBUTES.get(toxic, ())
    if needed and not any(attributes.get(key) for key in needed):
        wanted = " or ".join(f"{key} ({units[key]})" for key in needed)
        return "attributes", f"{toxic} needs {wanted} above 0; without it the toxic does nothing"
    return None


def whole_numbers(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as the fault server stores them: 300.0 becomes 300."""
    return {
        k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in attributes.items()
    }
