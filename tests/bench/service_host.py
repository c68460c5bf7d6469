"""The terminal service as systemd runs it, plus what a benchmark needs to drive it.

    python tests/bench/service_host.py --config FILE

The same entry point as pingjia-terminal.service (`python -m terminal`: terminal/serve.py
`main`, none of the `pingjia` CLI imported), with two additions made from outside
the product code: a line "press N" on standard input presses the mock button of level
N (the buttons must use the mock pin factory), and the first frame the display is
handed is reported on standard output as "frame <CLOCK_MONOTONIC ns>", so the
benchmark can time process start → first frame.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from terminal import serve  # noqa: E402


def _open_and_drive(self, *args, **kwargs):
    _OPEN(self, *args, **kwargs)
    show, first = self.display.show, []

    def timed_show(image):
        sent = show(image)
        if not first:
            first.append(time.monotonic_ns())
            print(f"frame {first[0]}", flush=True)
        return sent

    self.display.show = timed_show
    threading.Thread(target=_presses, args=(self.panel,), daemon=True).start()


def _presses(panel) -> None:
    for line in sys.stdin:
        word, _, level = line.partition(" ")
        if word == "press":
            panel.simulate(int(level))


def _then_drive(alg):
    """The service decides on OpenSSL before it imports the runtime (terminal/lean.py):
    the runtime is patched at that same point, so the benchmark loads what the unit does."""
    global _OPEN
    kept_out = _DECIDE(alg)
    from terminal.runtime import Runtime
    _OPEN, Runtime._open = Runtime._open, _open_and_drive
    return kept_out


_OPEN = None
_DECIDE, serve.hash_without_openssl = serve.hash_without_openssl, _then_drive

if __name__ == "__main__":
    sys.exit(serve.main())
