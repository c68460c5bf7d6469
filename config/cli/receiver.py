"""`pingjia receiver serve|import|report`: the reference receiver from the command line.

    pingjia receiver serve [--db F] [--port P] [--bind A] [--device ID:SECRETFILE[:ALG]]...
                           [--config-dir D] [--lookup-file F] [--enroll-codes F]
                           [--faults RATE[:KINDS]] [--seed N]
    pingjia receiver import FILE... [--db F] [--device ID:SECRETFILE[:ALG]] [--json]
    pingjia receiver report [--db F] [--device ID] [--json]

Exit codes: 0 success (import: nothing rejected), 1 the operation failed (import: some
record rejected), 2 usage, file or database error. Secrets are read from files and never
printed. Not the production central system: see docs/receiver.md.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

# The receiver's own modules (server, database, schema checker) are imported inside the
# commands: `pingjia` builds every command's parser, and only these use the receiver.
DEFAULT_DB = "pingjia-receiver.db"
DEFAULT_PORT = 8420
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "receiver", help="the reference receiver: a development and test central system "
                         "(not for production)")
    sub = p.add_subparsers(dest="receiver_command", required=True, metavar="ACTION")

    serve = sub.add_parser("serve", help="serve the central API (loopback by default)")
    _db(serve)
    serve.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    _devices(serve)
    serve.add_argument("--config-dir", type=Path,
                       help="directory of <device_id>.json or default.json device configs")
    serve.add_argument("--lookup-file", type=Path, help="JSON lookup table for POST /v1/lookup")
    serve.add_argument("--enroll-codes", type=Path,
                       help='JSON file {"CODE": {"device_id"?, "hash_alg"?}} for POST /v1/enroll')
    serve.add_argument("--faults", type=_faults, metavar="RATE[:KINDS]",
                       help="inject faults into uploads: share 0..1 and comma-separated kinds "
                            "(5xx,429,slow,drop,partial,drop_before,drop_after; default all)")
    serve.add_argument("--seed", type=int, help="seed of the fault draw (repeatable runs)")
    serve.set_defaults(func=cmd_serve)

    imp = sub.add_parser("import", help="import outbox export files (pingjia outbox export)")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _db(imp)
    _devices(imp)
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(func=cmd_import)

    rep = sub.add_parser("report", help="per-device counts, chain events, last heartbeat")
    _db(rep)
    rep.add_argument("--device", dest="only", metavar="ID", help="only this device")
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.set_defaults(func=cmd_report)


def _db(p) -> None:
    p.add_argument("--db", type=Path, default=Path(DEFAULT_DB),
                   help=f"the receiver's SQLite database (default ./{DEFAULT_DB})")


def _devices(p) -> None:
    p.add_argument("--device", dest="devices", action="append", default=[], type=_device_arg,
                   metavar="ID:SECRETFILE[:ALG]",
                   help="register a device with the secret in SECRETFILE (sha256 or sm3; "
                        "repeatable); it stays registered in the database")


def _device_arg(text: str) -> tuple[str, Path, str]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("use ID:SECRETFILE or ID:SECRETFILE:ALG")
    return parts[0], Path(parts[1]), parts[2] if len(parts) == 3 else "sha256"


def _faults(text: str):
    from agent.receiver.faults import KINDS, Faults
    rate, _, kinds = text.partition(":")
    try:
        return Faults(rate=float(rate), kinds=tuple(kinds.split(",")) if kinds else KINDS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _read_devices(entries) -> dict:
    from agent.receiver.db import ReceiverError
    out = {}
    for device_id, path, alg in entries:
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise ReceiverError(f"device {device_id}: cannot read the secret file {path}: "
                                f"{exc.strerror}") from None
        out[device_id] = {"secret": secret, "hash_alg": alg}
    return out


def _fail(exc) -> int:
    print(f"pingjia receiver: {exc}", file=sys.stderr)
    return EXIT_USAGE


def cmd_serve(args) -> int:
    from agent.receiver import Receiver
    from agent.receiver.db import ReceiverError

    try:
        codes = None
        if args.enroll_codes:
            codes = json.loads(args.enroll_codes.read_text(encoding="utf-8"))
            if not isinstance(codes, dict) or not all(isinstance(v, dict) for v in codes.values()):
                raise ReceiverError(f"{args.enroll_codes}: needs an object of code: {{...}} entries")
        for name, path in (("--config-dir", args.config_dir), ("--lookup-file", args.lookup_file)):
            if path is not None and not path.exists():
                raise ReceiverError(f"{name} {path} does not exist")
        receiver = Receiver(args.db, devices=_read_devices(args.devices), config_dir=args.config_dir,
                            lookup_file=args.lookup_file, enroll_codes=codes, faults=args.faults,
                            bind=args.bind, port=args.port, seed=args.seed)
        receiver.start()
    except (ReceiverError, OSError, ValueError) as exc:
        return _fail(exc)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    faults = receiver.faults
    print(f"pingjia receiver: serving the central API at {receiver.url} (database {args.db}; "
          f"{len(receiver.db.devices())} device(s)"
          + (f"; faults {faults.rate:.0%} of uploads: {','.join(faults.kinds)}" if faults.rate else "")
          + "). A development and test peer, not the production central system. "
            "Stop with Ctrl-C or SIGTERM.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        receiver.close()
    stats = receiver.stats
    print(f"pingjia receiver: stopped after {stats['requests']} requests: {stats['accepted']} "
          f"accepted, {stats['duplicate']} duplicate, {stats['rejected']} rejected", flush=True)
    return EXIT_OK


def cmd_import(args) -> int:
    from agent.receiver.db import ReceiverDB, ReceiverError
    from agent.receiver.importer import import_file

    new_db = not args.db.exists()
    try:
        db = ReceiverDB(args.db)
    except (ReceiverError, OSError) as exc:
        return _fail(exc)
    reports, problems = [], []
    try:
        for device_id, entry in _read_devices(args.devices).items():
            db.add_device(device_id, entry["secret"], entry["hash_alg"], source="import")
        for path in args.files:
            try:
                reports.append(import_file(db, path))
            except ReceiverError as exc:
                problems.append(str(exc))
    except ReceiverError as exc:
        return _fail(exc)
    finally:
        db.close()
        if new_db and not reports:  # a failed first import leaves no stray database behind
            for leftover in (args.db, Path(f"{args.db}-wal"), Path(f"{args.db}-shm")):
                leftover.unlink(missing_ok=True)
    totals = {k: sum(r[k] for r in reports) for k in ("records", "accepted", "duplicate", "rejected")}
    if args.json:
        print(json.dumps({"files": reports, "totals": totals, "problems": problems},
                         ensure_ascii=False, indent=2))
    else:
        for r in reports:
            errors = ", ".join(f"{k} {n}" for k, n in sorted(r["errors"].items()))
            print(f"{r['file']}: {r['records']} records of {r['device_id']}: {r['accepted']} "
                  f"accepted, {r['duplicate']} duplicate, {r['rejected']} rejected"
                  + (f" ({errors})" if errors else ""))
        for p in problems:
            print(f"pingjia receiver: {p}", file=sys.stderr)
        if len(reports) > 1:
            print(f"total: {totals['records']} records: {totals['accepted']} accepted, "
                  f"{totals['duplicate']} duplicate, {totals['rejected']} rejected")
    if problems:
        return EXIT_USAGE
    return EXIT_FAILED if totals["rejected"] else EXIT_OK


def cmd_report(args) -> int:
    from agent.receiver.db import ReceiverDB, ReceiverError

    if not args.db.exists():
        return _fail(f"no receiver database at {args.db}")
    try:
        db = ReceiverDB(args.db)
    except (ReceiverError, OSError) as exc:
        return _fail(exc)
    try:
        ids = db.device_ids()
        if args.only:
            if args.only not in ids:
                return _fail(f"device {args.only} is not known to {args.db}")
            ids = [args.only]
        devices = [db.summary(d) for d in ids]
    finally:
        db.close()
    if args.json:
        print(json.dumps({"devices": devices}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not devices:
        print(f"{args.db}: no devices yet")
    for d in devices:
        print(_describe(d))
    return EXIT_OK


def _describe(d: dict) -> str:
    when = d["last_heartbeat_at"]
    beat = datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds") if when else "never"
    lines = [f"device {d['device_id']}: {d['records']} records, {d['corrections']} corrections, "
             f"{d['heartbeats']} heartbeats (last {beat})"]
    for c in d["chains"]:
        lines.append(f"  chain {c['chain_id']}: {c['records']} records, seq {c['first_seq']}"
                     f"..{c['last_seq']}")
    if d["rejected"]:
        lines.append("  rejected: " + ", ".join(f"{k} {n}" for k, n in d["rejected"].items()))
    if d["chain_events"]:
        lines.append(f"  chain events ({len(d['chain_events'])}):")
        lines += [f"    {e['kind']} at seq {e['seq']} of chain {e['chain_id']}: {e['detail']}"
                  for e in d["chain_events"]]
    else:
        lines.append("  chain intact")
    return "\n".join(lines)
