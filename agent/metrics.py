"""Fleet metrics as a node_exporter textfile (Prometheus text exposition format).

node_exporter's textfile collector reads `*.prom` files from one directory; a file it
reads half-written gives wrong numbers, so the file is written next to its final name
and renamed over it (atomic within a directory).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional

from config import levels

LEVELS = tuple(sorted(levels.LEVELS))

_HELP = {
    "pingjia_queue_depth": ("gauge", "Records stored on the device and not yet delivered."),
    "pingjia_oldest_unsent_age_seconds": ("gauge", "Age of the oldest record not yet delivered "
                                                   "(0 when none)."),
    "pingjia_uploaded_records_total": ("counter", "Records the central system has taken "
                                                  "(accepted or duplicate)."),
    "pingjia_rejected_records": ("gauge", "Records the central system refused for good, parked "
                                          "on the device."),
    "pingjia_last_success_timestamp_seconds": ("gauge", "Unix time of the last answer from the "
                                                        "central system (0: none yet)."),
    "pingjia_ratings_total": ("counter", "Records made on the device, by kind and level "
                                         "(level=\"none\" for unrated)."),
}


def render(*, queue_depth: int, oldest_unsent_age_s: float, uploaded: int, rejected: int,
           last_success: Optional[float], ratings: Iterable[tuple]) -> str:
    """`ratings` are (kind, level, count) rows; every level of `rating` is listed."""
    counts: dict[tuple[str, str], int] = {("rating", str(lv)): 0 for lv in LEVELS}
    counts[("unrated", "none")] = 0
    for kind, level, n in ratings:
        key = (kind, "none" if level is None else str(level))
        counts[key] = counts.get(key, 0) + n
    values: Mapping[str, list] = {
        "pingjia_queue_depth": [("", queue_depth)],
        "pingjia_oldest_unsent_age_seconds": [("", round(oldest_unsent_age_s, 3))],
        "pingjia_uploaded_records_total": [("", uploaded)],
        "pingjia_rejected_records": [("", rejected)],
        "pingjia_last_success_timestamp_seconds": [("", round(last_success or 0, 3))],
        "pingjia_ratings_total": [(f'{{kind="{kind}",level="{level}"}}', n)
                                  for (kind, level), n in sorted(counts.items())],
    }
    lines = []
    for name, samples in values.items():
        kind, text = _HELP[name]
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)
    return "\n".join(lines) + "\n"


def write_textfile(path: str | Path, text: str) -> None:
    """Replace `path` with `text` atomically (temp file in the same directory + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
