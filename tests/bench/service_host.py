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

from terminal import runtime as terminal_runtime  # noqa: E402

_open = terminal_runtime.Runtime._open


def _open_and_drive(self, *args, **kwargs):
    _open(self, *args, **kwargs)
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


terminal_runtime.Runtime._open = _open_and_drive

if __name__ == "__main__":
    from terminal.serve import main
    sys.exit(main())
