"""`make bench`: every benchmark in tests/bench, each in its own process.

    python tests/bench/run.py [NAME ...]     e.g. run.py terminal idcard

Separate processes keep one benchmark's threads, caches and memory out of the next
one's figures (the sync benchmark measures the agent's RSS). Extra arguments after `--`
go to every benchmark.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("terminal", "panel", "service", "idcard", "receiver", "sync")  # the rest follow alphabetically


def benches(names):
    found = {p.stem[len("bench_"):]: p for p in HERE.glob("bench_*.py")}
    wanted = names or sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}; have: {', '.join(sorted(found))}")
    return [found[n] for n in wanted]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    names = argv[:argv.index("--")] if "--" in argv else argv
    failed = []
    for path in benches(names):
        print(f"== {path.stem}", flush=True)
        if subprocess.call([sys.executable, str(path), *extra], cwd=HERE.parents[1]) != 0:
            failed.append(path.stem)
        print(flush=True)
    if failed:
        print("benchmarks that did not finish: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
