"""The reference profile: the records exactly as stored and signed (the wire contract).

The stored JSON is the signed record, so the batch is put together from the stored text
without decoding or parsing it: `{"records": [<record>, ...]}`.
"""
from __future__ import annotations

from typing import Sequence


def encode(rows: Sequence) -> bytes:
    return b'{"records":[' + b",".join(row.json for row in rows) + b"]}"
