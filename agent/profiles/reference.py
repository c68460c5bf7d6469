"""The reference profile: the records exactly as stored and signed (the wire contract).

The stored JSON is the signed record, so the batch is put together from the stored text
without decoding or parsing it: `{"records": [<record>, ...]}`.
"""
from __future__ import annotations

from typing import Sequence


# The body is the stored records between these two, joined with commas: the agent
# builds it in one buffer (Outbox.next_raw_batch) instead of a Python object per record.
HEAD, TAIL = '{"records":[', "]}"


def encode(rows: Sequence) -> bytes:
    return HEAD.encode() + b",".join(row.json for row in rows) + TAIL.encode()
