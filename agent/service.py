"""The sync agent as a service (systemd: pingjia-agent.service): its options, start-up,
signals and `--once`.

`pingjia agent` (config/cli/agent.py) and `python -m agent` both run it; `python -m agent`
imports nothing but the agent (the lean way to run it as a service: `pingjia` loads every
command's module first), so the options and the run live here, below the command line.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from config import settings as config_settings
from terminal.entry import service_main
from terminal.lean import hash_without_openssl

log = logging.getLogger("pingjia.agent")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The agent's options, for `pingjia agent` and `python -m agent` alike."""
    p.add_argument("--once", action="store_true",
                   help="deliver what is pending and exit: 0 everything delivered, 1 records still "
                        "pending, 2 settings error, 3 records parked as rejected")
    # SUPPRESS: `pingjia --config F agent` keeps F unless `agent --config` names another
    p.add_argument("--config", default=argparse.SUPPRESS,
                   help="settings file (default /etc/pingjia/pingjia.toml; env PINGJIA_CONFIG)")


def run_command(args) -> int:
    settings = config_settings.load(getattr(args, "config", None) or config_settings.DEFAULT_PATH)
    # before anything that hashes is imported: sha256 needs no OpenSSL hashes (TLS to the
    # central system loads OpenSSL's TLS half all the same: terminal/lean.py)
    hash_without_openssl(settings.device.hash_alg)
    # here: `pingjia` imports this module for every command, and only this one syncs
    from agent.sync import ONCE_ATTEMPTS, Agent
    from terminal.secret import SecretError, load_secret
    from terminal.store import StorageError

    if not settings.central.url:
        print(f"pingjia agent: central.url is not set in {settings.source}: nothing to sync to",
              file=sys.stderr)
        return 2
    try:
        agent = Agent(settings, secret=load_secret(settings), wake=not args.once,
                      max_attempts=ONCE_ATTEMPTS if args.once else None)
    except (SecretError, StorageError) as exc:
        print(f"pingjia agent: {exc}", file=sys.stderr)
        return 1
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: agent.stop())
    try:
        if args.once:
            return agent.run_once()
        log.warning("agent %s started: %s, profile %s, batches of %d", settings.device.id,
                    settings.central.url, settings.central.profile, agent.batch_size)
        agent.run()
        log.warning("agent stopped")
        return 0
    finally:
        agent.close()


def main(argv=None) -> int:
    """`python -m agent`: the same command without the rest of the `pingjia` CLI."""
    return service_main("agent", "Pingjia sync agent", add_arguments, run_command, argv)


