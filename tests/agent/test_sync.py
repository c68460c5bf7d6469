"""The sync agent against the reference receiver over HTTP: batches, per-record answers,
retries of every transient fault, TLS settings, `--once`.

The agent is the real one on a real store; the receiver is the real one on a free port.
Only sleeping is replaced: backoff pauses are noted (Sleeps) instead of waited.
"""
from __future__ import annotations

import http.server
import json
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
import urllib3

from agent import retry
from terminal.central_client import Central, Transient, retry_after_s, tls_options
from agent.receiver import Faults
from agent.sync import MAX_BATCH
from terminal.store import DB_NAME, Reader
from tests.agent.conftest import (DEVICE_ID, SECRET, Sleeps, agent_settings_file, drafts, fill,
                                  open_store, settings_for)

ROOT = Path(__file__).resolve().parents[2]


def statuses(device) -> dict:
    """Delivery status → count, read straight from the device database."""
    with sqlite3.connect(device / DB_NAME) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM delivery GROUP BY status"))


def stored(device) -> list[dict]:
    with Reader(device / DB_NAME) as r:
        return list(r.records())


def closed_port_url() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens once closed


# --- batches and per-record answers ---------------------------------------------------

def test_backlog_goes_in_batches_of_at_most_500_and_arrives_whole(device, central_rx, make_agent):
    fill(device, 1234)
    agent = make_agent(central_rx.url)
    seen = []
    agent.central.session.hooks["response"].append(
        lambda r, *a, **k: seen.append(len(json.loads(r.request.body)["records"]))
        if r.request.path_url == "/v1/records" else None)

    assert agent.drain() is True

    assert seen == [MAX_BATCH, MAX_BATCH, 234]
    assert central_rx.records(DEVICE_ID) == stored(device)  # exactly as signed, in order
    assert central_rx.chain_report(DEVICE_ID) == []
    assert statuses(device) == {"delivered": 1234}
    view = agent.outbox.sync_view()
    assert view["queue_depth"] == 0 and view["oldest_unsent_at"] is None
    assert view["last_upload_at"] is not None and view["rejected"] == 0
    assert agent.upload_batch() == 0  # nothing left: no request at all
    assert len(seen) == 3


def test_batch_size_setting_is_obeyed(device, central_rx, make_agent):
    fill(device, 25)
    agent = make_agent(central_rx.url, batch_size=10)
    assert agent.drain()
    assert agent.stats["batches"] == 3 and central_rx.count(DEVICE_ID) == 25


def test_rejected_record_is_parked_with_its_reason_and_blocks_nothing(device, central_rx, make_agent):
    with open_store(device) as s:
        s.append(drafts(3))
        s.append(drafts(1, start=4, level=2, tags=()))  # a bad rating without a tag: refused
        s.append(drafts(3, start=5))
    agent = make_agent(central_rx.url, batch_size=2)  # the refused one is mid-queue

    assert agent.drain() is True

    assert statuses(device) == {"delivered": 6, "rejected": 1}
    with sqlite3.connect(device / DB_NAME) as conn:
        seq, error = conn.execute("SELECT seq, error FROM delivery WHERE status = 'rejected'").fetchone()
    assert seq == 4 and "tags" in error
    assert agent.outbox.sync_view()["rejected"] == 1 and agent.stats["rejected"] == 1
    assert agent.stats["uploaded"] == 6
    assert [r["seq"] for r in central_rx.records(DEVICE_ID)] == [1, 2, 3, 5, 6, 7]
    # parked for good: later runs do not send it again
    requests_before = central_rx.stats["requests"]
    assert agent.drain() and agent.upload_batch() == 0
    assert central_rx.stats["requests"] == requests_before


def test_records_the_receiver_already_holds_count_as_delivered(device, central_rx, make_agent):
    fill(device, 30)
    assert make_agent(central_rx.url).drain()
    # the agent was killed after the answer and before marking: everything pending again
    with sqlite3.connect(device / DB_NAME) as conn:
        conn.execute("UPDATE delivery SET status = 'pending' WHERE seq > 10")
    with open_store(device) as s:
        s.append(drafts(5, start=31))
    again = make_agent(central_rx.url)
    assert again.drain()
    assert statuses(device) == {"delivered": 35}
    assert central_rx.count(DEVICE_ID) == 35  # once each
    assert central_rx.stats["duplicate"] >= 20


# --- retries ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["5xx", "429", "slow", "drop_before", "drop_after", "partial"])
def test_every_transient_fault_is_retried_until_delivered_once(kind, device, central_rx, make_agent):
    fill(device, 40)
    central_rx.set_faults(Faults(rate=1.0, kinds=(kind,), retry_after_s=7, slow_s=1.5))
    sleeps = Sleeps()

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:  # the network comes back after three failures
            central_rx.set_faults(Faults())

    agent = make_agent(central_rx.url, sleep=sleep, timeout_s=1, batch_size=20)
    assert agent.drain() is True

    assert len(sleeps) == 3
    assert central_rx.count(DEVICE_ID) == 40 and central_rx.chain_report(DEVICE_ID) == []
    assert statuses(device) == {"delivered": 40}
    if kind == "429":
        assert sleeps == [7, 7, 7]  # Retry-After honoured, not the shorter backoff
    with sqlite3.connect(device / DB_NAME) as conn:
        assert conn.execute("SELECT max(attempts) FROM delivery").fetchone()[0] == 4


def test_unreachable_central_backs_off_exponentially_with_a_cap(device, make_agent):
    fill(device, 3)
    sleeps = Sleeps()
    agent = make_agent(closed_port_url(), sleep=sleeps, agent_kw={
        "max_attempts": 12, "backoff": {"initial": 0.5, "cap": 8.0, "jitter": 0.5}})
    assert agent.drain() is False  # out of attempts (only --once has a limit)
    assert "ConnectionError" in agent.last_error
    assert len(sleeps) == 11
    for n, pause in enumerate(sleeps):
        base = min(0.5 * 2 ** n, 8.0)
        assert base <= pause <= min(base + 0.5, 8.0)
    assert statuses(device) == {"pending": 3}  # nothing lost, nothing marked


def test_without_a_limit_the_agent_never_gives_up_while_transient(device, make_agent, central_rx):
    fill(device, 2)
    sleeps = Sleeps()
    agent = None

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 60:  # a long outage ends: point at the live receiver
            agent.central.base = central_rx.url

    agent = make_agent(closed_port_url(), sleep=sleep, agent_kw={"backoff": {"cap": 4.0}})
    assert agent.drain() is True
    assert len(sleeps) == 60 and max(sleeps) <= 4.0
    assert central_rx.count(DEVICE_ID) == 2


def test_retry_policy_prefers_retry_after_and_caps_it():
    sleeps = Sleeps()
    answers = iter([Transient("429", retry_after=3), Transient("503", retry_after=10_000),
                    Transient("500"), "done"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    policy = retry.policy(sleep=sleeps, stopping=lambda: False, initial=0.5, cap=60, jitter=0)
    assert policy(call) == "done"
    assert sleeps == [3, retry.RETRY_AFTER_CAP_S, 2.0]  # third try: 0.5 * 2**2


def test_retry_after_header_forms():
    now = datetime(2026, 11, 22, 1, 0, 0, tzinfo=timezone.utc).timestamp()
    assert retry_after_s("5", now) == 5
    assert retry_after_s(format_datetime(datetime.fromtimestamp(now + 90, timezone.utc), usegmt=True),
                         now) == 90
    assert retry_after_s(format_datetime(datetime.fromtimestamp(now - 90, timezone.utc), usegmt=True),
                         now) == 0
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None


# --- TLS ------------------------------------------------------------------------------------

def test_tls_settings_reach_requests(tmp_path):
    base = settings_for(tmp_path, "https://central.example").central
    assert tls_options(base) == {"verify": True, "cert": None}
    ca = settings_for(tmp_path, "https://c.example", ca_bundle="/etc/pingjia/ca.pem").central
    assert tls_options(ca) == {"verify": "/etc/pingjia/ca.pem", "cert": None}
    both = settings_for(tmp_path, "https://c.example", client_cert="/c.pem", client_key="/k.pem").central
    assert tls_options(both)["cert"] == ("/c.pem", "/k.pem")
    one = settings_for(tmp_path, "https://c.example", client_cert="/both.pem").central
    assert tls_options(one)["cert"] == "/both.pem"
    off = settings_for(tmp_path, "https://c.example", verify_tls=False, ca_bundle="/x.pem").central
    assert tls_options(off)["verify"] is False
    client = Central(both, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256")
    try:
        assert client.session.verify is True and client.session.cert == ("/c.pem", "/k.pem")
    finally:
        client.close()


class Gateway:
    """A minimal central gateway of another make than the reference receiver: it answers
    every item of an upload `accepted` by its `record_id` and keeps what it was sent.
    Over TLS when given a server context."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.bodies: list[dict] = []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                gateway.bodies.append({"path": self.path, "body": sent})
                answer = {"server_time": int(time.time())}
                if self.path == "/v1/records":
                    answer["results"] = [{"record_id": item["record_id"], "status": "accepted"}
                                         for item in sent["records"]]
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def self_signed(tmp_path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https_server(tmp_path):
    """The gateway over HTTPS with a self-signed certificate for 127.0.0.1."""
    cert, key = self_signed(tmp_path, "server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    gateway = Gateway(ctx)
    try:
        yield gateway.url, cert
    finally:
        gateway.close()


def test_tls_is_verified_by_default_and_a_private_ca_is_trusted(tmp_path, https_server):
    url, cert = https_server

    def call(**central):
        client = Central(settings_for(tmp_path, url, **central).central, device_id=DEVICE_ID,
                         secret=SECRET, hash_alg="sha256")
        try:
            return client.call("POST", "/v1/devices/x/heartbeat", b"{}")
        finally:
            client.close()

    with pytest.raises(Transient, match="SSLError"):
        call()  # an unknown certificate is refused
    assert call(ca_bundle=str(cert)).status == 200
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert call(verify_tls=False).status == 200


# --- `--once` ---------------------------------------------------------------------------------

def run_once(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "--once", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_once_exits_0_when_everything_is_delivered(tmp_path, device, central_rx):
    fill(device, 700)
    done = run_once(agent_settings_file(tmp_path, device, central_rx.url))
    assert done.returncode == 0, done.stderr
    assert central_rx.count(DEVICE_ID) == 700 and statuses(device) == {"delivered": 700}


def test_pingjia_agent_once_is_the_same_command(tmp_path, device, central_rx):
    fill(device, 3)
    config = agent_settings_file(tmp_path, device, central_rx.url)
    done = subprocess.run([sys.executable, "-m", "config.cli", "--config", str(config), "agent", "--once"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert central_rx.count(DEVICE_ID) == 3


def test_once_exit_codes_for_parked_and_undelivered_records(device, central_rx, make_agent):
    with open_store(device) as s:
        s.append(drafts(2) + drafts(1, start=3, level=1, tags=()))
    parked = make_agent(central_rx.url, agent_kw={"max_attempts": 3})
    assert parked.run_once() == 3  # delivered what it could; one record is parked
    with open_store(device) as s:
        s.append(drafts(1, start=4))
    offline = make_agent(closed_port_url(), agent_kw={"max_attempts": 3})
    assert offline.run_once() == 1  # still pending: try again later
    assert statuses(device) == {"delivered": 2, "rejected": 1, "pending": 1}


def test_once_without_a_central_url_is_a_settings_error(tmp_path, device):
    done = run_once(agent_settings_file(tmp_path, device, ""))
    assert done.returncode == 2 and "central.url is not set" in done.stderr


# --- SM3, and properties of the answer reading ------------------------------------------------

def test_an_sm3_device_signs_records_and_requests_with_sm3(tmp_path):
    from agent.receiver import Receiver
    from agent.sync import Agent
    data = tmp_path / "sm3"
    with open_store(data, alg="sm3") as s:
        s.append(drafts(7))
    settings = settings_for(data, "http://unused").with_values({"device": {"hash_alg": "sm3"}})
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET, "hash_alg": "sm3"}},
                  port=0) as rx:
        settings = settings.with_values({"central": {"url": rx.url}})
        agent = Agent(settings, secret=SECRET, sleep=Sleeps(), wake=False, kernel_synced=lambda: True)
        try:
            assert agent.drain() and agent.heartbeat()
        finally:
            agent.close()
        assert rx.count(DEVICE_ID) == 7 and rx.chain_report(DEVICE_ID) == []
        assert rx.stats["rejected"] == 0 and rx.heartbeats(DEVICE_ID)  # signed with SM3 too


def test_a_client_certificate_is_presented_when_configured(tmp_path):
    server_cert, server_key = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server_cert, server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED  # the gateway admits known devices only
    ctx.load_verify_locations(client_cert)
    gateway = Gateway(ctx)
    try:
        def call(**central):
            client = Central(settings_for(tmp_path, gateway.url, ca_bundle=str(server_cert),
                                          **central).central,
                             device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256")
            try:
                return client.call("POST", "/v1/devices/x/heartbeat", b"{}")
            finally:
                client.close()

        with pytest.raises(Transient):
            call()  # no certificate: the handshake fails
        assert call(client_cert=str(client_cert), client_key=str(client_key)).status == 200
    finally:
        gateway.close()


def test_the_zhejiang_profile_goes_through_the_same_delivery(device, make_agent):
    with open_store(device) as s:
        s.append(drafts(4, level=4) + drafts(1, start=5, level=None))
    gateway = Gateway()
    try:
        agent = make_agent(gateway.url, profile="zhejiang", batch_size=3)
        assert agent.drain()
    finally:
        gateway.close()
    uploads = [b["body"]["records"] for b in gateway.bodies if b["path"] == "/v1/records"]
    assert [len(u) for u in uploads] == [3, 2]
    items = [item for u in uploads for item in u]
    assert [i["record"] for i in items] == stored(device)
    assert [i["report"]["satisfaction"] if i["report"] else None for i in items] == ["4"] * 4 + [None]
    assert statuses(device) == {"delivered": 5}


def test_agent_without_a_store_says_so_and_exits_1(tmp_path):
    empty = tmp_path / "no-store-yet"
    empty.mkdir()
    done = run_once(agent_settings_file(tmp_path, empty, "http://127.0.0.1:9"))
    assert done.returncode == 1 and "no database" in done.stderr and "terminal" in done.stderr
