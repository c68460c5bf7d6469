"""The reference receiver has the local API's defences against slow clients: 64
trickling connections from 127.0.0.2 do not keep a signed upload from 127.0.0.1 out."""
from __future__ import annotations

import time

from agent.receiver import Receiver
from tests.agent.conftest import DEVICE_ID, SECRET
from tests.agent.receiver.conftest import Client, make_records
from tests.terminal.test_api_slow import Tricklers


def test_64_trickling_connections_do_not_keep_an_upload_out(tmp_path):
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET}}) as rx:
        records = make_records(tmp_path / "dev", 20)
        with Tricklers(rx.port, head=b"POST /v1/records HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 40) as attack:
            time.sleep(1.5)
            client = Client(rx.url)
            for batch in range(4):
                started = time.monotonic()
                r = client.upload(records[batch * 5:batch * 5 + 5])
                assert r.status_code == 200, r.text
                assert {x["status"] for x in r.json()["results"]} == {"accepted"}
                assert time.monotonic() - started < 2
                client.session.close()  # a new connection each time: it must be let in
                time.sleep(0.5)
        assert rx.count(DEVICE_ID) == 20
        assert attack.refused > 0
