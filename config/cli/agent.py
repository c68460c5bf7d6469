"""`pingjia agent [--once]`: the sync agent service (agent/service.py runs it)."""
from __future__ import annotations

from agent.service import add_arguments, run_command


def add_command(subparsers) -> None:
    p = subparsers.add_parser("agent", help="run the sync agent (uploads records to the central system)")
    add_arguments(p)
    p.set_defaults(func=run_command)
