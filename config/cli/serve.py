"""`pingjia terminal` and `pingjia out-of-service`: the terminal service and its last frame
(terminal/serve.py runs them; systemd runs the service as the leaner `python -m terminal`)."""
from __future__ import annotations

from config.cli import local
from terminal.serve import add_arguments, out_of_service_command, run_command


def add_command(subparsers) -> None:
    p = subparsers.add_parser("terminal", help="run the terminal service (buttons, display, API)")
    add_arguments(p)  # --config before or after the command name
    p.set_defaults(func=run_command)
    o = subparsers.add_parser(
        "out-of-service", help="draw the out-of-service frame on the display (opens nothing else)",
        description="Draw the out-of-service frame and leave it on the panel. The terminal "
                    "unit runs `pingjia out-of-service --if-failed` as ExecStopPost=, so a "
                    "crashed terminal leaves no stale 'please rate' frame on the screen.")
    local.add_settings_option(o)
    o.add_argument("--if-failed", action="store_true",
                   help="do nothing when systemd says the service ended cleanly "
                        "($SERVICE_RESULT=success, $EXIT_CODE=exited): it drew the frame itself")
    o.set_defaults(func=out_of_service_command)
