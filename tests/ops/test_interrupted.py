"""Every 201 ends as records, whatever happens: the real `pingjia terminal`, killed with
SIGKILL or stopped with SIGTERM while an invitation is open, started again; a full disk
for real (a small tmpfs); triggers dropped behind the terminal's back."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from terminal.reserve import RESERVE_BYTES, RESERVE_NAME
from terminal.store import DB_NAME, Reader
from tests.ops.conftest import SECRET, TOKEN, api_url, get_status, sim_config, start_terminal, stop
from terminal import records as rec

AUTH = {"Authorization": f"Bearer {TOKEN}"}
STAFF = {"id": "0131", "name": "王芳"}


def invite(config: Path, visit_id: str, n: int = 1) -> requests.Response:
    items = [{"project_no": f"{visit_id}-{i}", "task_name": "社会保障卡申领"} for i in range(1, n + 1)]
    return requests.post(api_url(config) + "/v1/invitations", headers=AUTH, timeout=10,
                         json={"visit_id": visit_id, "items": items, "staff": STAFF})


def visit(config: Path, visit_id: str) -> requests.Response:
    return requests.get(api_url(config) + f"/v1/invitations/{visit_id}", headers=AUTH, timeout=10)


def started(config: Path, notify) -> subprocess.Popen:
    notify.received.clear()
    proc = start_terminal(config, notify.env())
    try:
        notify.wait_for("READY=1", timeout=40)
    except AssertionError:
        proc.kill()
        raise AssertionError("the terminal did not start: " + proc.communicate()[1][-2000:])
    return proc


def killed(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stored(config: Path) -> list[dict]:
    with Reader(config.parent / "data" / DB_NAME) as r:
        return list(r.records())


def assert_whole(records: list[dict]) -> None:
    assert rec.verify_chain(records, SECRET, "sha256") == []


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_an_invitation_open_at_a_kill_or_stop_ends_interrupted_once(tmp_path, notify, how):
    config = sim_config(tmp_path)
    proc = started(config, notify)
    try:
        assert invite(config, "v-open", n=2).status_code == 201
        if how == "SIGKILL":
            killed(proc)
            assert stored(config) == []  # written when the terminal starts again
        else:
            code, err = stop(proc)
            assert code == 0, err
            # a clean stop writes the outcome itself
            assert [r["unrated_reason"] for r in stored(config)] == ["interrupted"] * 2
        proc = started(config, notify)
        answer = visit(config, "v-open")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"visit_id": "v-open", "state": "unrated", "reason": "interrupted",
                                 "unrated_reason": "interrupted"}
        # once: a second start (and a second kill) makes no more
        killed(proc)
        proc = started(config, notify)
        records = stored(config)
        assert sorted(r["project_no"] for r in records) == ["v-open-1", "v-open-2"]
        assert {(r["kind"], r["unrated_reason"], r["visit_id"]) for r in records} == {
            ("unrated", "interrupted", "v-open")}
        assert_whole(records)
        # the visit is closed for good: reopening it is refused
        assert invite(config, "v-open", n=2).status_code == 409
    finally:
        stop(proc)


# --- a full disk, for real -----------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """The terminal's data directory on a 12 MiB tmpfs of its own."""
    config = sim_config(tmp_path)
    data = tmp_path / "data"
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(data)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); "
                    "tests/terminal/test_storage_failures.py covers SQLITE_FULL with max_page_count")
    try:
        yield config, data
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system (as another program might)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (256 * 1024, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, bytes(size))
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_a_full_disk_loses_nothing_acknowledged(small_disk, notify):
    config, data = small_disk
    proc = started(config, notify)
    try:
        reserve = data / RESERVE_NAME
        assert reserve.stat().st_size == RESERVE_BYTES
        assert get_status(config)["reserve"]["in_place"] is True
        filler = fill(data)
        # the reserve's space takes the invitation: acknowledged and durable (ten items:
        # a small one fits in the slack of the WAL's last 4 KiB page, 1 KiB frames)
        assert invite(config, "full-1", n=10).status_code == 201
        assert not reserve.exists()
        code, err = stop(proc)  # the clean stop writes the open visit's outcome
        assert code == 0, err
        assert [(r["visit_id"], r["unrated_reason"]) for r in stored(config)] == [
            ("full-1", "interrupted")] * 10

        # starting on the full disk: the storage error, not idle; no invitation taken
        proc = started(config, notify)
        status = get_status(config)
        assert status["state"] == "storage_error", status
        assert "disk is full" in status["storage_error"]
        assert status["reserve"]["in_place"] is False
        refused = invite(config, "full-2")
        assert refused.status_code == 503 and refused.json()["error"] == "storage_failed"

        # room again: the reserve comes back, and with it the invitations
        filler.unlink()
        end = time.monotonic() + 15
        while get_status(config)["state"] != "idle":
            assert time.monotonic() < end, get_status(config)
            time.sleep(0.3)
        assert reserve.stat().st_size == RESERVE_BYTES
        assert invite(config, "full-3").status_code == 201
        killed(proc)
        proc = started(config, notify)
        records = stored(config)
        assert [(r["visit_id"], r["unrated_reason"]) for r in records] == [
            ("full-1", "interrupted")] * 10 + [("full-3", "interrupted")]
        assert_whole(records)
    finally:
        stop(proc)


# --- schema and triggers ---------------------------------------------------------------------

@pytest.mark.slow
def test_dropped_triggers_are_restored_at_start_and_reported(tmp_path, notify):
    config = sim_config(tmp_path)
    proc = started(config, notify)
    assert invite(config, "t-1").status_code == 201
    stop(proc)
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    db.execute("DROP TRIGGER records_no_delete")
    db.execute("DROP TRIGGER records_no_update")
    db.execute("CREATE TRIGGER records_no_update BEFORE UPDATE ON records BEGIN SELECT 1; END")
    db.commit()
    db.close()
    proc = started(config, notify)
    try:
        status = get_status(config)
        assert sorted(status["schema_restored"]) == ["trigger records_no_delete",
                                                     "trigger records_no_update (altered)"]
        db = sqlite3.connect(tmp_path / "data" / DB_NAME)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM records")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE records SET level = 5")
        db.close()
        out = subprocess.run([sys.executable, "-m", "config.cli", "--config", str(config),
                              "status"], capture_output=True, text=True, timeout=60,
                             cwd=Path(__file__).resolve().parents[2])
        assert "trigger records_no_delete" in out.stdout, out.stdout + out.stderr
        assert out.returncode == 1  # a technician must look: someone removed a guard
    finally:
        stop(proc)
