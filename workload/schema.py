"""The capture format's Parquet schema, apart from the plug-in so that readers need not
import Locust (which monkey-patches the process with gevent)."""

from __future__ import annotations

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("t_start", pa.float64()),  # wall-clock start, epoch seconds
        ("name", pa.dictionary(pa.int32(), pa.string())),
        ("type", pa.dictionary(pa.int32(), pa.string())),
        ("latency_us", pa.int64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("size", pa.int64()),
        ("pid", pa.int32()),
        ("worker", pa.int32()),
        ("intended_start", pa.float64()),  # epoch seconds; NaN when no schedule
        ("status", pa.int32()),  # HTTP status; 0 when no answer came (or a WORKFLOW entry)
        ("content_type", pa.string()),  # of a failed answer only, else null
        ("body", pa.string()),  # first 200 chars of a failed answer's body, else null
    ]
)
