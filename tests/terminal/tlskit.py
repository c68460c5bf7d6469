"""A test CA and a device certificate for 127.0.0.1, made with the openssl command."""
from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TestPki:
    ca: Path        # the hall CA's certificate: what clients trust
    cert: Path      # the device's certificate, for IP 127.0.0.1
    key: Path
    spki: str       # base64 SHA-256 of the device key's SubjectPublicKeyInfo (Chromium)


def _openssl(*args, cwd: Path) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True).stdout


def make_pki(where: Path) -> TestPki:
    where.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=Pingjia Test Hall CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=where)
    _openssl("req", *ec, "-keyout", "device.key", "-out", "device.csr", "-subj", "/CN=127.0.0.1",
             cwd=where)
    (where / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                   "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n")
    _openssl("x509", "-req", "-in", "device.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "device.pem", "-days", "2", "-extfile", "ext.cnf", cwd=where)
    pub = _openssl("x509", "-in", "device.pem", "-pubkey", "-noout", cwd=where)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True).stdout
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    return TestPki(where / "ca.pem", where / "device.pem", where / "device.key", spki)
