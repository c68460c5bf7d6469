"""Shared parts of the benchmarks: percentiles, a verdict against a target, the work dir."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


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


def rss_kib(pid: int) -> int:
    """A process's resident set (VmRSS) in KiB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc); NaN when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
