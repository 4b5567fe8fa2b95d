"""Made-up but plausible VODs, for the workloads that create them."""

from __future__ import annotations

import random
from typing import Any


def fake_title(rng: random.Random | None = None) -> str:
    r = rng or random
    words = ("council", "meeting", "budget", "parade", "school", "board", "forum", "concert")
    return f"{r.choice(words).title()} {r.choice(words)} {r.randint(1, 99_999)}"


def fake_vod(rng: random.Random | None = None) -> dict[str, Any]:
    r = rng or random.Random()
    title = fake_title(r)
    return {
        "title": title,
        "description": f"Recording of the {title.lower()}",
        "file_name": f"{title.lower().replace(' ', '-')}.mp4",
        "duration_s": r.randint(60, 7200),
        "size_bytes": r.randint(10_000_000, 4_000_000_000),
    }
