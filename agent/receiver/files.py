"""The receiver's files, read on every request that needs them so that an edit shows at
once: the per-device settings it serves (`<config_dir>/<device_id>.json` or
`default.json`, with their ETag) and the lookup table of the kiosk (docs/receiver.md).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from agent.receiver.contract import check
from agent.receiver.db import ReceiverError

LOOKUP_CHECK = check("Business")


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def etag_matches(header: Optional[str], etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def config_file(config_dir: Optional[Path], device_id: str) -> Optional[Path]:
    """The settings file served to a device: its own, else the default one, else None."""
    if config_dir is None:
        return None
    for name in (f"{device_id}.json", "default.json"):
        if (config_dir / name).is_file():
            return config_dir / name
    return None


def load_lookup(path: Path) -> dict[tuple[str, str], list[dict]]:
    """The lookup file: {"people": [{"cert_type"?, "cert_no", "businesses": [...]}]}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReceiverError(f"lookup file {path}: {exc}") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise ReceiverError(f"lookup file {path}: needs a top-level \"people\" list")
    out: dict = {}
    for i, person in enumerate(people):
        if not isinstance(person, dict) or not isinstance(person.get("cert_no"), str) \
                or not isinstance(person.get("cert_type", "111"), str) \
                or not isinstance(person.get("businesses"), list):
            raise ReceiverError(f"lookup file {path}: people[{i}] needs cert_no (string) and "
                                "businesses (list)")
        for j, business in enumerate(person["businesses"]):
            problem = LOOKUP_CHECK.problem(business)
            if problem:  # the position only: the entry holds a person's ID number
                raise ReceiverError(f"lookup file {path}: people[{i}].businesses[{j}]"
                                    f".{problem[0]} {problem[1]}")
        key = (person.get("cert_type", "111"), person["cert_no"].upper())
        out.setdefault(key, []).extend(person["businesses"])
    return out
