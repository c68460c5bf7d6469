"""The agent's service loop: woken by the terminal, fallback scan, stop; and the whole
loop terminal → agent → receiver with the sync view in the terminal's GET /v1/status."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from agent.receiver import Receiver
from terminal.wake import WakeSocket, notify, wake_path
from tests.agent.conftest import DEVICE_ID, drafts, open_store, wait_until
from tests.ops.conftest import DEVICE_ID as OPS_DEVICE, ROOT, SECRET, TOKEN, api_url, get_status, \
    sim_config, start_terminal, stop


class Running:
    """agent.run() on a thread, stopped and joined at the end."""

    def __init__(self, agent):
        self.agent = agent
        self.thread = threading.Thread(target=agent.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.agent.stop()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the agent did not stop"


def test_a_new_record_reaches_the_receiver_well_within_a_second_of_the_wake_up(
        device, central_rx, make_agent):
    agent = make_agent(central_rx.url, wake=True, scan_interval_s=3600)  # no scan would help
    latencies = []
    with Running(agent), open_store(device) as store:
        wait_until(lambda: central_rx.heartbeats(DEVICE_ID), what="the first heartbeat")
        for i in range(1, 9):
            started = time.monotonic()
            store.append(drafts(1, start=i))
            notify(wake_path(device))
            wait_until(lambda: central_rx.count(DEVICE_ID) == i, timeout=10, every=0.002,
                       what=f"record {i} at the receiver")
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)  # the agent is idle again, waiting on its socket
    assert max(latencies) < 1.0, latencies
    assert central_rx.chain_report(DEVICE_ID) == []


def test_without_a_wake_up_the_periodic_scan_finds_the_record(device, central_rx, make_agent):
    agent = make_agent(central_rx.url, wake=True, scan_interval_s=2)
    with Running(agent), open_store(device) as store:
        wait_until(lambda: central_rx.heartbeats(DEVICE_ID), what="the first heartbeat")
        time.sleep(0.3)  # past the first pass: the agent waits on its socket
        store.append(drafts(2))  # and no datagram
        time.sleep(0.5)
        assert central_rx.count(DEVICE_ID) == 0  # nothing woke it
        wait_until(lambda: central_rx.count(DEVICE_ID) == 2, timeout=5, what="the scan")


def test_stop_ends_a_waiting_agent_at_once(device, central_rx, make_agent):
    agent = make_agent(central_rx.url, wake=True, scan_interval_s=3600)
    runner = Running(agent)
    with runner:
        wait_until(lambda: central_rx.heartbeats(DEVICE_ID), what="the first heartbeat")
        started = time.monotonic()
        agent.stop()
        runner.thread.join(2)
        assert time.monotonic() - started < 1.0


def test_wake_socket_many_datagrams_one_wake_up_and_a_stale_socket_is_replaced(tmp_path):
    path = wake_path(tmp_path)
    first = WakeSocket(path)
    first.sock.close()  # a killed agent leaves its socket file behind
    with WakeSocket(path) as sock:
        assert sock.wait(0) is False
        for _ in range(50):
            notify(path)
        assert sock.wait(1) is True
        assert sock.wait(0) is False  # all fifty drained by the one wake-up
    notify(path)  # nobody listening: ignored, no error
    notify(tmp_path / "nowhere" / "agent.wake")


@pytest.mark.slow
def test_whole_loop_terminal_agent_receiver_and_the_status_sync_view(tmp_path):
    config = sim_config(tmp_path)
    with Receiver(tmp_path / "rx.db", devices={OPS_DEVICE: {"secret": SECRET, "hash_alg": "sha256"}},
                  port=0) as rx:
        config.write_text(config.read_text(encoding="utf-8")
                          + f'\n[central]\nurl = "{rx.url}"\nscan_interval_s = 3600\n', encoding="utf-8")
        terminal = start_terminal(config, {})
        agent = None
        try:
            wait_until(lambda: _status_or_none(config), timeout=30, what="the terminal's API")
            env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
            agent = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config)],
                                     cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
            wait_until(lambda: rx.heartbeats(OPS_DEVICE), timeout=30, what="the agent's heartbeat")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            r = requests.post(api_url(config) + "/v1/invitations", headers=headers, timeout=5, json={
                "items": [{"project_no": "330106202611220000077", "task_name": "不动产登记"}],
                "staff": {"id": "0131", "name": "王芳"}})
            assert r.status_code == 201, r.text
            started = time.monotonic()
            r = requests.delete(api_url(config) + "/v1/invitations/current", headers=headers, timeout=5)
            assert r.status_code == 200, r.text  # an unrated (cancelled) record is stored
            [record] = wait_until(lambda: rx.records(OPS_DEVICE), timeout=10, every=0.005,
                                  what="the record at the receiver")
            assert time.monotonic() - started < 1.0  # woken by the terminal, not the scan
            assert record["kind"] == "unrated" and record["unrated_reason"] == "cancelled"
            status = wait_until(lambda: (lambda s: s if s["last_upload_at"] else None)(get_status(config)),
                                what="last_upload_at in the status")
            assert status["queue_depth"] == 0 and status["rejected"] == 0
            assert status["oldest_unsent_at"] is None
        finally:
            if agent is not None:
                agent.send_signal(signal.SIGTERM)
                _, err = agent.communicate(timeout=20)
                assert agent.returncode == 0, err
            code, err = stop(terminal)
        assert code == 0, err


def _status_or_none(config):
    try:
        return get_status(config)
    except requests.RequestException:
        return None
