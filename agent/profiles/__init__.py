"""Province profiles: how a batch of our records is laid out for a central system.

A profile maps the payload and nothing else. Signing, transport, retries, and reading the
per-record answers (by `record_id`) are the agent's and the same for every profile, so a
profile is a module with one function: `encode(rows) -> bytes`, the body of
`POST /v1/records` for a batch of stored records (`agent.outbox.Row`).

- `reference`: the wire contract itself (docs/sync.md); what the reference receiver takes.
- `zhejiang`: each record also mapped onto the Zhejiang 办件评价 `report` fields, for a
  gateway that forwards them to the province (docs/profiles.md).
"""
from __future__ import annotations

import importlib

NAMES = ("reference", "zhejiang")


def get(name: str):
    """The profile module of that name (`central.profile`)."""
    if name not in NAMES:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"agent.profiles.{name}")
