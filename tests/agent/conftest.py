"""Shared parts of the agent tests: a device store, record drafts, settings, the receiver.

Everything is real: the terminal's Store on a temporary SQLite file, the reference
receiver over HTTP on 127.0.0.1 port 0, the agent itself. Time is a parameter: the agent
gets a `sleep` that records the backoff instead of waiting.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.settings import defaults
from terminal.records import SCORES
from terminal.store import DB_NAME, Store

SECRET = b"0123456789abcdef0123456789abcdef"
DEVICE_ID = "PJQ-330106-0007"
BOOT = "boot-A"


def draft(i: int = 1, *, level: int | None = 5, tags=(), synced: bool = True,
          invited_at: str = "2026-11-22T09:20:00+08:00",
          rated_at: str | None = "2026-11-22T09:21:10+08:00", mono_ms: int = 1_000_000,
          reason: str = "timeout") -> dict:
    """The content of one record as the flow makes it (level None: an unrated record)."""
    rated = level is not None
    return {
        "kind": "rating" if rated else "unrated", "unrated_reason": None if rated else reason,
        "visit_id": f"visit-{i}", "channel": "window", "pf": "5", "area_code": "330106",
        "hall_code": "A", "window_no": "07", "dept_code": "11330106002489123X",
        "dept_name": "区行政服务中心", "project_no": f"330106202611220{i:06d}",
        "task_code": "11330106MB0001", "task_handle_item": "", "task_name": "不动产登记",
        "staff_id": "0131", "staff_name": "王芳", "level": level,
        "score": SCORES[level] if rated else None, "tags": list(tags), "tags_missing": False,
        "tag_version": "2", "assess_number": 1, "invited_at": invited_at,
        "rated_at": rated_at if rated else None, "clock_synced": synced, "mono_ms": mono_ms,
        "real_name": False,
    }


def drafts(n: int, start: int = 1, **kw) -> list[dict]:
    return [draft(i, **kw) for i in range(start, start + n)]


def open_store(data_dir: Path, boot_id: str = BOOT, alg: str = "sha256") -> Store:
    return Store(Path(data_dir) / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg=alg,
                 boot_id=boot_id)


def fill(data_dir: Path, n: int, per_call: int = 1000, **kw) -> None:
    """n records in the device store, appended in big calls (fast)."""
    with open_store(data_dir) as s:
        for start in range(1, n + 1, per_call):
            s.append(drafts(min(per_call, n + 1 - start), start=start, **kw))


def settings_for(data_dir: Path, url: str, **central):
    values = {"url": url, "timeout_s": 2, **central}
    return defaults().with_values({"device": {"id": DEVICE_ID, "data_dir": str(data_dir)},
                                   "central": values})


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", every: float = 0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def device(tmp_path):
    """A data dir holding an empty device store."""
    data = tmp_path / "dev"
    open_store(data).close()
    return data


# --- the sync agent's tests (tests/agent/test_sync*.py, test_chaos.py, test_tamper.py) ---

class Sleeps(list):
    """The agent's backoff `sleep`: notes each pause and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def central_rx(tmp_path):
    """The reference receiver on 127.0.0.1:<free port>, knowing DEVICE_ID, config from a dir."""
    from agent.receiver import Receiver

    config_dir = tmp_path / "central-config"
    config_dir.mkdir()
    rx = Receiver(tmp_path / "receiver.db", devices={DEVICE_ID: {"secret": SECRET, "hash_alg": "sha256"}},
                  config_dir=config_dir, port=0, seed=7)
    rx.start()
    try:
        yield rx
    finally:
        rx.close()


@pytest.fixture
def make_agent(device):
    """Agents on the `device` store; each is closed at the end of the test.

    `make_agent(url, sleep=..., **central_settings)`; the clock counts as synchronised
    unless the test says otherwise (`kernel_synced=`).
    """
    from agent.sync import Agent

    made = []

    def make(url, *, sleep=None, kernel_synced=lambda: True, boot_id=BOOT, wake=False,
             agent_kw=None, **central):
        agent = Agent(settings_for(device, url, **central), secret=SECRET,
                      sleep=sleep if sleep is not None else Sleeps(), kernel_synced=kernel_synced,
                      boot_id=boot_id, wake=wake, **(agent_kw or {}))
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


def agent_settings_file(tmp_path: Path, data_dir: Path, url: str, **central) -> Path:
    """A settings file for the agent as a process (`python -m agent --config F`)."""
    secret = tmp_path / "agent-secret"
    secret.write_bytes(SECRET)
    values = {"url": url, "timeout_s": 2, **central}
    lines = [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in values.items()]
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "{DEVICE_ID}"\ndata_dir = "{data_dir}"\nsecret_file = "{secret}"\n'
                    "[central]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path
