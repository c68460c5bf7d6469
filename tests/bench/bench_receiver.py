"""Reference receiver ingest: records/s for 500-record batches over loopback HTTP.

    python tests/bench/bench_receiver.py [--records 20000] [--batch 500]

The receiver runs as its own process (`pingjia receiver serve --port 0`), as in a pilot,
so the client's work does not share its interpreter. The client sends genuine records
(sealed by the terminal's Store) in signed requests (terminal/signing.py), one batch after
the other on one keep-alive connection, as the agent does; bodies are encoded before the
clock starts, signatures are made per request. Each record is judged in full on arrival
(schema, hash, HMAC, rules), each batch is one transaction with synchronous=FULL.
Then the same batches again: every record a duplicate. The receiver's own CPU time per
record is printed too: on a busy machine it says what the wall-clock rate cannot.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from terminal import signing  # noqa: E402
from terminal.store import DB_NAME, Store  # noqa: E402
from tests.agent.conftest import DEVICE_ID, SECRET, drafts  # noqa: E402
from tests.bench.figures import add_dir_option, cpu_s, line, percentile, work_dir  # noqa: E402

TARGET_RPS = 5000


def make_records(directory: Path, n: int) -> list[dict]:
    out = []
    with Store(directory / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256",
               boot_id="bench") as store:
        for start in range(1, n + 1, 1000):
            out += store.append(drafts(min(1000, n + 1 - start), start=start))
    return out


def start_receiver(directory: Path):
    secret = directory / "device.secret"
    secret.write_bytes(SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "config.cli", "receiver", "serve",
                             "--db", str(directory / "receiver.db"), "--port", "0",
                             "--device", f"{DEVICE_ID}:{secret}"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    found = re.search(r"http://[\d.]+:\d+", proc.stdout.readline())
    if not found:
        proc.kill()
        raise RuntimeError("the receiver did not start")
    return proc, found.group(0)




def send_all(session: requests.Session, url: str, bodies: list[bytes]):
    """(seconds for all, per-batch ms, results)"""
    latencies, statuses = [], {}
    started = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        headers = signing.sign_headers(device_id=DEVICE_ID, secret=SECRET, alg="sha256",
                                       method="POST", path="/v1/records", body=body,
                                       timestamp=int(time.time()))
        headers["Content-Type"] = "application/json"
        answer = session.post(url + "/v1/records", data=body, headers=headers, timeout=60)
        answer.raise_for_status()
        for result in answer.json()["results"]:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        latencies.append((time.perf_counter() - t) * 1000)
    return time.perf_counter() - started, latencies, statuses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    add_dir_option(parser)
    args = parser.parse_args(argv)
    with work_dir(args) as tmp:
        tmp = Path(tmp)
        records = make_records(tmp, args.records)
        bodies = [json.dumps({"records": records[i:i + args.batch]}, ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8")
                  for i in range(0, len(records), args.batch)]
        proc, url = start_receiver(tmp)
        try:
            with requests.Session() as session:
                cpu_before = cpu_s(proc.pid)
                fresh_s, fresh_ms, fresh = send_all(session, url, bodies)
                cpu_fresh = cpu_s(proc.pid) - cpu_before
                again_s, again_ms, again = send_all(session, url, bodies)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    n = len(records)
    if fresh != {"accepted": n} or again != {"duplicate": n}:
        print(f"receiver: unexpected answers: first {fresh}, again {again}", file=sys.stderr)
        return 1
    print(f"receiver: {n} records in {len(bodies)} batches of {args.batch}, loopback HTTP, "
          f"receiver in its own process")
    print(line("ingest, new records", n / fresh_s, "records/s", TARGET_RPS, higher_is_better=True,
               fmt="{:.0f}"))
    print(line("ingest, all duplicates", n / again_s, "records/s", fmt="{:.0f}"))
    # Wall-clock rates suffer from whatever else runs; this one does not (much).
    print(line("receiver CPU per new record", cpu_fresh / n * 1e6, "µs", 1e6 / TARGET_RPS,
               fmt="{:.0f}"))
    print(line("batch round trip p50", percentile(fresh_ms, 50), "ms"))
    print(line("batch round trip p95", percentile(fresh_ms, 95), "ms"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
