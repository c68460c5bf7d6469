"""Shared parts of the benchmarks: percentiles, a verdict against a target, the work dir."""
from __future__ import annotations

import os
import tempfile


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats going astray
    return ordered[int(rank) - 1]


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISSED"


def line(name: str, value: float, unit: str, target: float | None = None,
         higher_is_better: bool = False, fmt: str = "{:.2f}") -> str:
    text = f"  {name:<44} {fmt.format(value):>10} {unit}"
    if target is not None:
        sign = "≥" if higher_is_better else "≤"
        text += f"   (target {sign} {fmt.format(target)} {unit}: {verdict(value, target, higher_is_better)})"
    return text


def add_dir_option(parser) -> None:
    parser.add_argument("--dir", help="where the databases go (default: a temporary directory "
                                      "under the current one, i.e. on the same disk)")


def work_dir(args):
    """A temporary directory for the databases (removed afterwards), under --dir: on the
    disk whose fsync the figures should include."""
    return tempfile.TemporaryDirectory(prefix="pingjia-bench-", dir=args.dir or os.getcwd())
