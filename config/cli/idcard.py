"""`reader read`: read one card and print only masked data.

    python -m config.cli.idcard read --port /dev/serial/by-id/... [--baud B] [--json] [--timeout S]

Exit codes: 0 card read, 1 no card, read failed, or the card's ID number fails its GB
11643 check digit (a forged or misprinted card, or a reader that garbles the text block:
either way the technician must know; `--json` then says `"id_valid": false`), 2 usage or
port/reader error.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence, TextIO

from drivers.idcard.cards import CARD_TYPE_LABELS, CardFormatError
from drivers.idcard.frames import BAUD_CODES, CardFault, NoCard, ReaderIOError, StatusError
from drivers.idcard.reader import IdCardReader

EXIT_OK, EXIT_NO_CARD, EXIT_USAGE = 0, 1, 2
EXIT_BAD_ID = EXIT_NO_CARD  # the commands' scheme: 1 is "a problem was found"
ID_CHECK_TEXT = {True: "ok (GB 11643 check digit)", False: "WRONG check digit (GB 11643)",
                 None: "none (this card type has no check digit)"}


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `read`, for the `pingjia reader read` wrapper to reuse."""
    parser.add_argument("--port", required=True,
                        help="serial device, preferably /dev/serial/by-id/...")
    parser.add_argument("--baud", type=int, choices=sorted(BAUD_CODES, reverse=True),
                        help="reader rate (default: probe 115200, 57600, 38400, 19200, 9600)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--timeout", type=_positive, default=10.0,
                        help="seconds to wait for a card (default 10)")


def add_command(subparsers) -> None:
    """Register `pingjia reader read` with the main command."""
    reader = subparsers.add_parser(
        "reader", help="ID-card reader tools (stop the terminal service first: it owns the port)")
    sub = reader.add_subparsers(dest="reader_command", required=True, metavar="ACTION")
    read = sub.add_parser("read", help="read one card and print masked data")
    add_read_arguments(read)
    read.set_defaults(func=cmd_read)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reader", description="ID-card reader tools")
    sub = parser.add_subparsers(dest="command", required=True)
    read = sub.add_parser("read", help="read one card and print masked data")
    add_read_arguments(read)
    return parser


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage
        return EXIT_USAGE if exc.code else EXIT_OK
    return cmd_read(args, stdout=stdout, stderr=stderr)


def cmd_read(args: argparse.Namespace, *, stdout: Optional[TextIO] = None,
             stderr: Optional[TextIO] = None) -> int:
    # Looked up per call so that redirected or captured streams are honoured.
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with IdCardReader(args.port, args.baud) as reader:
            if not args.json:
                print(f"reader ready on {args.port} at {reader.baud} baud; place a card "
                      f"(waiting {args.timeout:g} s)", file=stderr, flush=True)
            card = reader.wait_for_card(args.timeout)
    except NoCard as exc:
        print(f"error: {exc.message}", file=stderr)
        return EXIT_NO_CARD
    except (CardFault, CardFormatError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=stderr)
        return EXIT_NO_CARD
    except (ReaderIOError, StatusError) as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_USAGE
    masked = card.masked()
    valid = card.id_check_ok  # None: the card type's number has no check digit
    if args.json:
        print(json.dumps({**masked, "cert_type": card.cert_type, "id_valid": valid},
                         ensure_ascii=False), file=stdout)
    else:
        print(f"card type: {masked['card_type']} ({CARD_TYPE_LABELS[card.card_type]})", file=stdout)
        print(f"name: {masked['name']}", file=stdout)
        print(f"id: {masked['id']}", file=stdout)
        print(f"id check: {ID_CHECK_TEXT[valid]}", file=stdout)
    if valid is False:
        print(f"warning: the ID number {masked['id']} has a wrong check digit (GB 11643): "
              "the card or the reader's text is not genuine", file=stderr)
        return EXIT_BAD_ID
    return EXIT_OK


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


if __name__ == "__main__":
    sys.exit(main())
