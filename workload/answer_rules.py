"""Which answers are checked against the data, as a route profile declares them (``[[answers]]``).

A 200 whose data is wrong passes every status and shape check: the Flask Archivist's
``GET /api/transcriptions`` answers ``[]`` whatever its table holds. A profile names the
reads whose answers can be held to a store the toolkit sees (config/routes/*.toml)::

    [[answers]]
    route = "transcriptions"       # a route key of [routes]
    kind = "list"                  # list: records in a list; item: one record by its path id
    items = ""                     # where the list is in the answer ("" the answer itself)
    store = "table"                # table: PostgreSQL; cablecast: the Cablecast simulator
    table = "transcription_results"
    key = "id"                     # the records' id field, and the store's key column
    noun = "transcriptions"        # how the finding names the records

An ``item`` check names ``record`` (where the record is in the answer, "" the answer
itself), the ``fields`` that must agree with the row and, when rows change, the
``version`` field that says which state an answer showed. The workload keeps what the
checks need of each answer (workload.observations), the experiment runner what the stores
held (experiments.answer_truth), and analysis.wrong_answers compares them. No Locust in
here: the rules are read and tested on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workload.run_lines import json_lines
from workload.tomlconfig import CONFIG_DIR, ConfigError, load_toml

KINDS = ("list", "item")
STORES = ("table", "cablecast")
CABLECAST_COLLECTIONS = ("shows", "vods")
IDS_KEPT = 20  # per list answer: enough for "an id the store never held", small per line
OBSERVATIONS_GLOB = "observations-*.jsonl"  # written by workload.observations
TRUTH_FILE = "answers-truth.json"  # what the stores held (experiments.answer_truth)
_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class AnswerCheck:
    """One read whose answers are compared with a store (see the module doc)."""

    route: str
    kind: str
    store: str
    key: str = "id"
    items: str = ""  # list: the field holding the list ("" the answer is the list)
    record: str = ""  # item: the field holding the record ("" the answer is the record)
    table: str = ""  # store = "table"
    collection: str = ""  # store = "cablecast": shows or vods
    version: str = ""  # item: a field that grows with every change of the row
    fields: tuple[str, ...] = ()  # item: fields that must agree with the row's columns
    noun: str = "records"

    @property
    def where(self) -> str:
        """The store in words, for findings: "the database", "Cablecast"."""
        return "the database" if self.store == "table" else "the Cablecast simulator"


def _field(value: Any, path: str) -> Any:
    """`value[path]` for a dotted path ("" : the value itself); None if absent."""
    for part in path.split(".") if path else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value


def observed(check: AnswerCheck, body: Any, path_id: object) -> dict[str, Any]:
    """What the comparison needs of one answer (pure, small: a count, a few ids, a few fields).

    ``n`` is None when the answer is not of the declared shape (no list, no record): not
    this check's business, the judging of statuses and shapes sees that.
    """
    if check.kind == "list":
        items = _field(body, check.items)
        if not isinstance(items, list):
            return {"n": None}
        ids = [r.get(check.key) for r in items[:IDS_KEPT] if isinstance(r, dict)]
        return {"n": len(items), "ids": [i for i in ids if i is not None]}
    record = _field(body, check.record)
    if not isinstance(record, dict):
        return {"n": None, "path_id": path_id}
    kept = {f: record.get(f) for f in check.fields if f in record}
    seen: dict[str, Any] = {"n": 1, "path_id": path_id, "id": record.get(check.key)}
    if check.version:
        seen["version"] = record.get(check.version)
    return {**seen, "fields": kept}


def profile_file(name_or_path: str) -> Path:
    """The file of a route profile given by name (config/routes/NAME.toml) or path."""
    path = Path(name_or_path)
    return path if path.suffix else CONFIG_DIR / "routes" / f"{name_or_path}.toml"


def load_answer_checks(path: Path) -> tuple[AnswerCheck, ...]:
    """The ``[[answers]]`` of a route profile file; ConfigError names what is wrong."""
    data = load_toml(path)
    raw = data.get("answers", [])
    routes = data.get("routes", {})
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ConfigError(f"{path}: answers must be an array of tables ([[answers]])")
    known = set(AnswerCheck.__dataclass_fields__)
    checks = []
    for i, entry in enumerate(raw):
        where = f"{path}: answers[{i}]"
        if unknown := sorted(set(entry) - known):
            raise ConfigError(f"{where} has unknown keys {', '.join(unknown)}")
        route, kind, store = entry.get("route"), entry.get("kind"), entry.get("store")
        if route not in routes:
            raise ConfigError(f"{where}.route {route!r} is not in [routes]")
        if kind not in KINDS or store not in STORES:
            raise ConfigError(f"{where}: kind is list or item, store is table or cablecast")
        if store == "table" and not all(
            _SQL_NAME.fullmatch(str(entry.get(k, "id"))) for k in ("table", "key")
        ):
            raise ConfigError(f"{where}: table and key must be plain SQL names")
        if store == "cablecast" and entry.get("collection") not in CABLECAST_COLLECTIONS:
            raise ConfigError(f"{where}.collection: one of {', '.join(CABLECAST_COLLECTIONS)}")
        fields = entry.get("fields", [])
        if not isinstance(fields, list) or not all(_SQL_NAME.fullmatch(str(f)) for f in fields):
            raise ConfigError(f"{where}.fields: a list of column names")
        if kind == "item" and store != "table":
            raise ConfigError(f"{where}: item checks read PostgreSQL rows (store = table)")
        text = {k: str(v) for k, v in entry.items() if k != "fields"}
        checks.append(
            AnswerCheck(
                route=str(route),
                kind=str(kind),
                store=str(store),
                key=text.get("key", "id"),
                items=text.get("items", ""),
                record=text.get("record", ""),
                table=text.get("table", ""),
                collection=text.get("collection", ""),
                version=text.get("version", ""),
                fields=tuple(map(str, fields)),
                noun=text.get("noun", "records"),
            )
        )
    return tuple(checks)


def read_observations(run_dir: Path) -> list[dict[str, Any]]:
    """Every observation of a run folder, oldest first (torn lines and counts left out)."""
    found = [e for e in json_lines(run_dir, OBSERVATIONS_GLOB) if "ts" in e and "route" in e]
    found.sort(key=lambda e: float(e["ts"]))
    return found
