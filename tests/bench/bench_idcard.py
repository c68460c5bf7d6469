"""Card read time (find + select + read) through the simulated reader on a pty.

    python tests/bench/bench_idcard.py [--reads 50] [--baud 115200]

A pty moves bytes as fast as the kernel copies them, whatever the baud rate, so the
simulator is run twice: unpaced (the driver's own overhead) and paced at the wire rate
(10 bits a byte, as a real UART would deliver). The paced figure cannot beat the wire
floor printed beside it; a real reader adds its RF time on top (vendors quote < 1 s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from drivers.idcard import frames as F  # noqa: E402
from drivers.idcard.reader import IdCardReader  # noqa: E402
from drivers.idcard.simulated import SimulatedReader  # noqa: E402

COMMAND_BYTES = 3 * 10  # find, select, read
ANSWER_BYTES = 15 + 19 + 1295  # 9F + IIN, 90 + SN, the 1295-byte read answer


def measure(reads: int, baud: int, pace: bool) -> list:
    times = []
    with SimulatedReader(baud=baud, pace=pace) as sim, IdCardReader(sim.link, baud=baud) as reader:
        for _ in range(reads):
            sim.place()
            started = time.perf_counter()
            reader.read_card()
            times.append(time.perf_counter() - started)
            sim.remove()
    return times


def summary(times: list) -> str:
    ms = sorted(t * 1000 for t in times)
    p50 = statistics.median(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   min {ms[0]:7.1f} ms   max {ms[-1]:7.1f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--baud", type=int, default=115200, choices=sorted(F.BAUD_CODES))
    args = parser.parse_args(argv)
    read_floor = F.wire_seconds(1295, args.baud) * 1000
    exchange_floor = F.wire_seconds(COMMAND_BYTES + ANSWER_BYTES, args.baud) * 1000
    print(f"ID-card read (find+select+read), {args.reads} reads at {args.baud} baud over a pty")
    print(f"  unpaced : {summary(measure(args.reads, args.baud, pace=False))}")
    print(f"  paced   : {summary(measure(args.reads, args.baud, pace=True))}")
    print(f"  wire floor: {read_floor:.1f} ms for the 1295-byte answer, "
          f"{exchange_floor:.1f} ms for all {COMMAND_BYTES + ANSWER_BYTES} bytes of the exchange")
    return 0


if __name__ == "__main__":
    sys.exit(main())
