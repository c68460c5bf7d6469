"""`pingjia outbox list | show ID | retry-rejected | export --to DIR`: the records waiting
for the central system, and carrying them by hand when the device has no network.

- list: records with their delivery state (pending, delivered, rejected, parked),
  filtered. `parked`: the sync agent found the stored row unreadable or not matching its
  own hash and set it aside, so that the rows behind it are delivered.
- show: one record as signed (the contract JSON); records hold no personal data.
- retry-rejected: put records the central system rejected back in the queue (after the
  cause was fixed there); the agent is woken to send them.
- export: every unsent record, signed and chained, as one JSON Lines file (a header
  line, then one record a line) in DIR, e.g. a USB stick. The command prints the
  `pingjia receiver import FILE --db DB --device ID:SECRETFILE` that delivers it on a
  networked machine; the records stay pending here, and when the
  device syncs later the central system counts them as duplicates: nothing is lost or
  doubled.

Exit codes: 0 done (also: nothing to do); 1 the store or the target cannot be used, or
no such record; 2 usage or settings error.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
from datetime import datetime
from pathlib import Path

from config.cli import local, progress
from terminal import sync_state
from terminal.store_schema import DELIVERY_STATUSES as STATUSES

FORMAT, VERSION = "pingjia-outbox", 1   # agent/receiver/importer.py reads this format


def add_command(subparsers) -> None:
    p = subparsers.add_parser("outbox", help="records waiting for upload: list, show, retry, export",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="outbox_command", metavar="ACTION")

    ls = sub.add_parser("list", help="records and their delivery state")
    ls.add_argument("--status", choices=STATUSES, action="append",
                    help="only these (repeat for more); default all")
    ls.add_argument("--kind", choices=("rating", "unrated"), help="only ratings or unrated records")
    ls.add_argument("--since", metavar="SEQ", type=int, default=0, help="records after this seq")
    ls.add_argument("--limit", type=int, default=100, help="at most this many, newest last "
                                                           "(default 100, 0 = all)")
    sh = sub.add_parser("show", help="one record (by seq or record_id) as signed")
    sh.add_argument("id", metavar="ID", help="seq number or record_id")
    rr = sub.add_parser("retry-rejected", help="queue the rejected records again")
    ex = sub.add_parser("export", help="write every unsent record to a file in DIR (USB stick)")
    ex.add_argument("--to", required=True, metavar="DIR", help="directory to write the file to")
    for parser, func in ((ls, list_command), (sh, show), (rr, retry_rejected), (ex, export)):
        local.add_settings_option(parser)
        local.add_store_option(parser)
        local.add_json_option(parser)
        parser.set_defaults(func=func)
    p.set_defaults(func=lambda args: p.print_help() or 2)


class StoreProblem(Exception):
    pass


def _connect(args):
    """A connection to the device's store (WAL: reading beside the running terminal is safe)."""
    from terminal.store import SCHEMA_VERSION, open_connection
    from terminal.store_schema import schema_version

    settings = local.load_settings(args)
    path = local.db_path(args, settings)
    if not path.exists():
        raise StoreProblem(f"no database at {path} (the terminal creates it when it first "
                           "starts; --data-dir names another place)")
    try:
        conn = open_connection(path)
        version = schema_version(conn)
    except sqlite3.Error as exc:
        raise StoreProblem(f"cannot open {path}: {exc}") from None
    if version < 2 or version > SCHEMA_VERSION:
        conn.close()
        raise StoreProblem(f"{path} has schema {version}; this software reads 2..{SCHEMA_VERSION}: "
                           "start the terminal once (it migrates) or update the software")
    return conn, settings, path


def _with_store(args, work) -> int:
    try:
        conn, settings, path = _connect(args)
    except StoreProblem as exc:
        return local.fail(str(exc))
    try:
        return work(conn, settings, path)
    except sqlite3.Error as exc:
        return local.fail(f"the store {path} failed: {exc}")
    finally:
        conn.close()


def list_command(args) -> int:
    def work(conn, settings, path):
        rows = sync_state.listed(conn, after_seq=args.since, statuses=args.status or (),
                                 kind=args.kind, limit=args.limit)
        totals = sync_state.status_counts(conn)
        lines = [f"{'seq':>6} {'status':<9} {'kind':<7} {'lvl':>3} {'when':<25} project_no / error"]
        for r in rows:
            what = r["level"] if r["kind"] == "rating" else "-"
            tail = r["project_no"] + (f"  [{r['error']}]" if r["error"] else "")
            lines.append(f"{r['seq']:>6} {r['status']:<9} {r['kind']:<7} {what!s:>3} "
                         f"{(r['rated_at'] or r['invited_at'] or '(JSON unreadable)'):<25} {tail}")
        lines.append("totals: " + ", ".join(f"{n} {s}" for s, n in totals.items()))
        local.emit(args, {"database": str(path), "records": rows, "totals": totals},
                   "\n".join(lines) if rows else "no records match\n" + lines[-1])
        return 0
    return _with_store(args, work)


def show(args) -> int:
    def work(conn, settings, path):
        key = args.id.strip()
        found = sync_state.one(conn, int(key) if key.isdigit() else key)
        if found is None:
            return local.fail(f"no record {key} in {path}")
        record, delivery = json.loads(found[0]), found[1]
        if args.json:
            local.emit(args, {"record": record, "delivery": delivery}, "")
        else:
            print(json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True))
            print(f"delivery: {delivery['status']} after {delivery['attempts']} attempt(s)"
                  + (f", {delivery['error']}" if delivery["error"] else ""))
        return 0
    return _with_store(args, work)


def retry_rejected(args) -> int:
    def work(conn, settings, path):
        from terminal.store import write_transaction

        with write_transaction(conn):
            seqs = sync_state.requeue_rejected(conn, _now_iso())
        if seqs:
            from terminal.wake import notify, wake_path
            notify(wake_path(Path(path).parent))
        local.emit(args, {"requeued": len(seqs), "seqs": seqs},
                   f"{len(seqs)} rejected record(s) queued again; the agent sends them next"
                   if seqs else "no rejected records")
        return 0
    return _with_store(args, work)


def export(args) -> int:
    target = Path(args.to)
    if not target.is_dir():
        return local.fail(f"--to {target}: not a directory (is the USB stick mounted?)", 2)

    def work(conn, settings, path):
        return _export(args, conn, path, target, _secret_file(args, settings))
    return _with_store(args, work)


def _secret_file(args, settings):
    """The device secret a receiver needs to check the exported records: the settings'
    file, or the one `pingjia simulate` keeps beside the store it was pointed at."""
    for candidate in (Path(settings.device.secret_file),
                      local.db_path(args, settings).parent / "secret"):
        if candidate.exists():
            return candidate.resolve()
    return None


def import_command(out: Path, device_id: str, hash_alg: str, secret_file) -> str:
    """`pingjia receiver import` for an export file, complete, so that it works as printed."""
    import os
    import shlex
    import sys

    alg = "" if hash_alg == "sha256" else f":{hash_alg}"
    device = f"{device_id}:{secret_file or 'SECRETFILE'}{alg}"
    # the command as it was typed (.venv/bin/pingjia on a development machine)
    program = sys.argv[0] if os.path.basename(sys.argv[0]) == "pingjia" else "pingjia"
    return shlex.join([program, "receiver", "import", str(out.resolve()),
                       "--db", "pingjia-receiver.db", "--device", device])


def _export(args, conn, path, target: Path, secret_file=None) -> int:
    from config.atomic import atomic_file

    from terminal.store import meta as store_meta, read_transaction

    meta = store_meta(conn)
    # one consistent snapshot: the terminal may append while we read
    with read_transaction(conn):
        seqs = sync_state.pending_seqs(conn)
        if not seqs:
            local.emit(args, {"exported": 0, "file": None}, "nothing to export: every record "
                                                            "is delivered")
            return 0
        header = {"format": FORMAT, "version": VERSION, "device_id": meta["device_id"],
                  "chain_id": meta["chain_id"], "hash_alg": meta["hash_alg"],
                  "exported_at": _now_iso(), "count": len(seqs),
                  "first_seq": seqs[0], "last_seq": seqs[-1]}
        name = f"pingjia-outbox-{meta['device_id']}-{seqs[0]}-{seqs[-1]}.jsonl"
        out = target / name
        rows = sync_state.pending_json(conn)
        try:
            with progress.for_args(args, len(seqs), "export") as bar, atomic_file(out) as f:
                f.write(_line(header))
                for (text,) in rows:
                    f.write(text.encode("utf-8") if isinstance(text, str) else bytes(text))
                    f.write(b"\n")
                    bar.advance()
        except OSError as exc:
            return local.fail(f"cannot write {out}: {exc}")
    rejected = sync_state.status_counts(conn)["rejected"]
    command = import_command(out, meta["device_id"], meta["hash_alg"], secret_file)
    text = (f"exported {len(seqs)} unsent record(s) (seq {seqs[0]}..{seqs[-1]}) to {out}\n"
            f"deliver it with the reference receiver (on a networked machine, give the paths "
            f"there; --device registers this device's secret once):\n  {command}\n"
            "the records stay queued here and count as duplicates when this device syncs")
    if rejected:  # the central system refused these for good: not carried unless retried
        text += (f"\nnot in the file: {rejected} record(s) the central system rejected "
                 "(`pingjia outbox retry-rejected` queues them again)")
    local.emit(args, {"exported": len(seqs), "file": str(out), "import_command": command,
                      "first_seq": seqs[0],
                      "last_seq": seqs[-1], "device_id": meta["device_id"], "rejected_left": rejected},
               text)
    return 0


def _line(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
