"""Which settings changed, and which service must restart to take each one up.

The terminal applies everything its flow reads (texts, timeouts, levels, tags, site,
button order) at the next visit, through `POST /v1/config/reload`; the rest is read once
at start: the hardware (buttons, display, sound, reader), the local API, the device's
identity and store, and the agent's link to the central system.
"""
from __future__ import annotations

from config import settings as schema

TERMINAL, AGENT = "terminal", "agent"
UNITS = {TERMINAL: "pingjia-terminal", AGENT: "pingjia-agent"}

# setting or whole section -> services that read it only when they start; the most
# specific entry wins, anything not listed is live
_READ_AT_START = {
    "device": (TERMINAL, AGENT),
    "device.mode": (TERMINAL,),
    "buttons": (TERMINAL,),
    "buttons.order": (),
    "display": (TERMINAL,),
    "display.large_text": (),   # the flow's config: the screens follow it at once
    "api": (TERMINAL,),
    "sound": (TERMINAL,),
    "reader": (TERMINAL,),
    "central": (AGENT,),
}


def restart_for(key: str) -> tuple[str, ...]:
    """Services to restart for a changed `section.key` (empty: the terminal reloads it)."""
    parts = key.split(".")
    for n in range(min(len(parts), 2), 0, -1):
        found = _READ_AT_START.get(".".join(parts[:n]))
        if found is not None:
            return found
    return ()


def changed_keys(old: schema.Settings | None, new: schema.Settings) -> list[str]:
    """`section.key` of every setting whose value differs (all of them when `old` is None)."""
    before = schema.to_dict(old) if old is not None else {}
    out = []
    for section, values in schema.to_dict(new).items():
        for key, value in values.items():
            if before.get(section, {}).get(key, object()) != value:
                out.append(f"{section}.{key}")
    return out


def classify(keys) -> dict:
    """`{"live": [...], "restart": {"terminal": [...], "agent": [...]}}` for changed keys."""
    live, restart = [], {TERMINAL: [], AGENT: []}
    for key in keys:
        services = restart_for(key)
        if not services:
            live.append(key)
        for service in services:
            restart[service].append(key)
    return {"live": live, "restart": {k: v for k, v in restart.items() if v}}


def live_values(new: schema.Settings, keys) -> dict:
    """`{"section": {"key": value}}` of the live ones among `keys`, to lay over the running
    settings (`Settings.with_values`)."""
    data = schema.to_dict(new)
    out: dict = {}
    for key in keys:
        if not restart_for(key):
            section, _, name = key.partition(".")
            out.setdefault(section, {})[name] = data[section][name]
    return out
