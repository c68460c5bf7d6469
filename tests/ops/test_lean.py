"""What the services keep out of memory (terminal/lean.py), checked on real processes:
the terminal of a sha256 device on plain HTTP maps no OpenSSL at all and still seals
records OpenSSL verifies; an sm3 device loads it; CPython's own hashes equal OpenSSL's;
requests without a charset guesser still reads its answers."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from terminal import records as rec
from terminal import signing
from terminal.store import DB_NAME, Reader
from tests.ops.conftest import ROOT, SECRET, TOKEN, api_url, sim_config, start_terminal, stop
from tests.terminal.tlskit import make_pki

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _openssl_libraries(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in ("libcrypto", "libssl") if name in maps}


@pytest.mark.parametrize("alg, loaded", [("sha256", set()), ("sm3", {"libcrypto"})])
def test_the_terminal_loads_openssl_only_for_an_algorithm_that_needs_it(tmp_path, notify, alg, loaded):
    config = sim_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[device]\n", f'[device]\nhash_alg = "{alg}"\n', 1),
                      encoding="utf-8")
    proc = start_terminal(config, notify.env())
    try:
        notify.wait_for("READY=1", timeout=40)
        assert _openssl_libraries(proc.pid) == loaded
        for visit in ("LEAN-1", "LEAN-2"):
            r = requests.post(api_url(config) + "/v1/invitations", headers=AUTH, timeout=10,
                              json={"visit_id": visit, "items": [{"project_no": visit,
                                                                    "task_name": "社会保障卡申领"}],
                                    "staff": {"id": "0131", "name": "王芳"}})
            assert r.status_code == 201, r.text
            r = requests.delete(api_url(config) + "/v1/invitations/current", headers=AUTH, timeout=10)
            assert r.status_code == 200, r.text
        assert _openssl_libraries(proc.pid) == loaded  # hashing and sealing loaded nothing
    finally:
        code, err = stop(proc)
    assert code == 0, err
    with Reader(config.parent / "data" / DB_NAME) as reader:
        records = list(reader.records())
    assert [r["visit_id"] for r in records] == ["LEAN-1", "LEAN-2"]
    # sealed with CPython's own SHA-256 and HMAC, verified here with OpenSSL's
    assert rec.verify_chain(records, SECRET, alg) == []


def test_a_sha256_terminal_serving_https_loads_tls_and_still_hashes_without_openssl(tmp_path, notify):
    pki = make_pki(tmp_path / "pki")
    config = sim_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[api]\n", f'[api]\ntls_cert = "{pki.cert}"\ntls_key = "{pki.key}"\n', 1), encoding="utf-8")
    proc = start_terminal(config, notify.env())
    try:
        notify.wait_for("READY=1", timeout=40)
        assert _openssl_libraries(proc.pid) == {"libcrypto", "libssl"}  # TLS needs them
        url = api_url(config).replace("http://", "https://")
        r = requests.get(url + "/v1/status", headers=AUTH, verify=str(pki.ca), timeout=10)
        assert r.status_code == 200, r.text
        r = requests.post(url + "/v1/invitations", headers=AUTH, verify=str(pki.ca), timeout=10,
                          json={"visit_id": "LEAN-TLS", "staff": {"id": "0131", "name": "王芳"},
                                "items": [{"project_no": "LEAN-TLS", "task_name": "社会保障卡申领"}]})
        assert r.status_code == 201, r.text
        r = requests.delete(url + "/v1/invitations/current", headers=AUTH, verify=str(pki.ca), timeout=10)
        assert r.status_code == 200, r.text
    finally:
        code, err = stop(proc)
    assert code == 0, err
    with Reader(config.parent / "data" / DB_NAME) as reader:
        records = list(reader.records())
    assert [r["visit_id"] for r in records] == ["LEAN-TLS"]
    assert rec.verify_chain(records, SECRET, "sha256") == []


_BUILTIN = """
import json, sys
from terminal.lean import hash_without_openssl
assert hash_without_openssl("sha256")
from terminal import records as rec, signing
out = []
for case in json.load(sys.stdin):
    body = case["body"].encode("utf-8")
    out.append([rec.digest(body, "sha256"), rec.sign(case["hash"], case["secret"].encode(), "sha256"),
                signing.signature(case["secret"].encode(), "POST", "/v1/records", 1764633600, body, "sha256")])
assert "_hashlib" in sys.modules and sys.modules["_hashlib"] is None
print(json.dumps(out))
"""


def test_cpythons_own_sha256_and_hmac_equal_openssls():
    rnd = random.Random(13)
    alphabet = "abc{}[]\":,0123456789 评价满意非常不满\u3000\U0001f600"
    cases = [{"body": "".join(rnd.choice(alphabet) for _ in range(rnd.choice([0, 1, 63, 64, 65, 1000, 70000]))),
              "hash": "%064x" % rnd.getrandbits(256),
              "secret": "".join(rnd.choice("0123456789abcdef") for _ in range(rnd.choice([1, 32, 64, 65, 200])))}
             for _ in range(60)]
    r = subprocess.run([sys.executable, "-c", _BUILTIN], input=json.dumps(cases), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    expected = [[rec.digest(c["body"].encode(), "sha256"), rec.sign(c["hash"], c["secret"].encode(), "sha256"),
                 signing.signature(c["secret"].encode(), "POST", "/v1/records", 1764633600,
                                   c["body"].encode(), "sha256")] for c in cases]
    assert json.loads(r.stdout) == expected


_AFTER = """
import sys
from terminal import lean
assert not lean.hash_without_openssl("sm3")          # only OpenSSL has SM3
server = lean.http_server()
assert "ssl" not in sys.modules
import ssl                                            # hidden only for that import
assert ssl.PROTOCOL_TLS_SERVER
requests = lean.requests_module()
assert "charset_normalizer" not in sys.modules and "chardet" not in sys.modules
answer = requests.models.Response()
answer._content, answer.encoding = "{\\"名\\": \\"王芳\\"}".encode("utf-8"), None
assert answer.text == "{\\"名\\": \\"王芳\\"}" and answer.json() == {"名": "王芳"}
import hashlib
assert hashlib.new("sm3", b"abc").hexdigest().startswith("66c7f0f4")
print("ok")
"""


def test_what_is_hidden_is_hidden_only_where_it_is_not_needed():
    r = subprocess.run([sys.executable, "-W", "error", "-c", _AFTER], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
