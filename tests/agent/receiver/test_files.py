"""The files the receiver serves (agent/receiver/files.py), read on every request: the
per-device config with its ETag, and the kiosk's lookup table."""
from __future__ import annotations

import json
from pathlib import Path

from tests.agent.conftest import DEVICE_ID, draft, open_store
from tests.agent.receiver.conftest import OTHER_ID, OTHER_SECRET, Client


# --- config -----------------------------------------------------------------------------

CONFIG = {"tags": {"version": "3", "levels": {"1": [{"code": "101", "text": "办事指南不准确"}]}},
          "texts": {"thanks": "感谢您的评价"}, "invite_timeout_s": 45}


def test_config_with_etag(rx, client):
    path = f"/v1/devices/{DEVICE_ID}/config"
    missing = client.get(path)
    assert missing.status_code == 404 and missing.json()["error"] == "no_config"
    (rx.config_dir / "default.json").write_text(json.dumps(CONFIG, ensure_ascii=False), "utf-8")
    first = client.get(path)
    assert first.status_code == 200 and first.json() == CONFIG
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(path, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert client.get(path, **{"If-None-Match": '"other"'}).status_code == 200
    own = {**CONFIG, "invite_timeout_s": 90}
    (rx.config_dir / f"{DEVICE_ID}.json").write_text(json.dumps(own), "utf-8")
    changed = client.get(path, **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json() == own and changed.headers["ETag"] != etag
    other = Client(rx.url, OTHER_ID, OTHER_SECRET).get(f"/v1/devices/{OTHER_ID}/config")
    assert other.json() == CONFIG  # falls back to default.json


def test_unreadable_config_file_is_500_config_invalid(rx, client):
    (rx.config_dir / f"{DEVICE_ID}.json").write_text("[1, 2", "utf-8")
    answer = client.get(f"/v1/devices/{DEVICE_ID}/config")
    assert answer.status_code == 500 and answer.json()["error"] == "config_invalid"


# --- lookup -----------------------------------------------------------------------------

CERT = "11010519491231002X"
BUSINESS = {"project_no": "330106202611220000001", "task_name": "不动产登记", "task_code": "T1",
            "dept_name": "区行政服务中心", "staff_name": "王芳", "finished_at": "2026-11-22T09:20:01+08:00"}


def write_lookup(path: Path, businesses) -> None:
    path.write_text(json.dumps({"people": [{"cert_type": "111", "cert_no": CERT,
                                            "businesses": businesses}]}, ensure_ascii=False), "utf-8")


def test_lookup_serves_businesses_not_yet_rated(rx, client, tmp_path):
    second = {**BUSINESS, "project_no": "330106202611220000002"}
    write_lookup(rx.lookup_file, [BUSINESS, second])
    ask = {"cert_type": "111", "cert_no": CERT.lower()}
    assert client.post("/v1/lookup", ask).json() == {"businesses": [BUSINESS, second]}
    rated = draft(1)  # its project_no is 330106202611220000001
    assert rated["project_no"] == BUSINESS["project_no"]
    with open_store(tmp_path / "dev") as store:
        client.upload(store.append([rated]))
    assert client.post("/v1/lookup", ask).json() == {"businesses": [second]}
    assert client.post("/v1/lookup", {"cert_type": "111", "cert_no": "1"}).json() == {"businesses": []}
    bad = client.post("/v1/lookup", {"cert_type": "111", "cert_no": "1; drop"})
    assert bad.status_code == 400 and bad.json()["field"] == "cert_no"


def test_lookup_never_echoes_the_id_number(rx, client, caplog):
    rx.lookup_file.write_text('{"people": [{"cert_no": "%s", "businesses": [{}]}]}' % CERT, "utf-8")
    answer = client.post("/v1/lookup", {"cert_type": "111", "cert_no": CERT})
    assert answer.status_code == 500 and answer.json()["error"] == "lookup_invalid"
    assert CERT not in answer.text and CERT not in caplog.text
