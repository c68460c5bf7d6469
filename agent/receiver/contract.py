"""The central API's document, agent/central-openapi.json, as the reference receiver uses
it: the document, and the checks of its schemas by the project's one validator
(terminal/contract.py: fastjsonschema's verdict, jsonschema's reason). The record schema
it refers to is terminal/record.schema.json, found by its `$id`.
"""
from __future__ import annotations

from terminal.contract import Check, load_document

SPEC = load_document("agent", "central-openapi.json")


def check(schema_name: str) -> Check:
    """The check of one schema of the central API's document."""
    return Check(schema_name, SPEC)
