"""The reference receiver: the central API for development, tests, demos and pilots.

Not the production central system. See docs/receiver.md.

The names below load on first use (PEP 562): `pingjia` imports every command's module to
build its help, and the receiver's schema checker and database need not slow down a
technician's `pingjia status`.
"""
import importlib

_EXPORTS = {"Faults": "agent.receiver.faults", "import_file": "agent.receiver.importer",
            "Receiver": "agent.receiver.server"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
