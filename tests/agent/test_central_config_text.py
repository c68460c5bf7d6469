"""A pulled central config with text the device cannot keep is refused whole (issue 10)."""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config.errors import ConfigError
from terminal import central
from tests.agent.test_sync_config import GOOD


class Central:
    """A central system answering the config pull with fixed bytes: JSON may carry a lone
    surrogate as a \\u escape, which the reference receiver cannot even send."""

    def __init__(self):
        self.body = b"{}"
        central = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", '"' + hashlib.sha256(central.body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(central.body)))
                self.end_headers()
                self.wfile.write(central.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, body) -> None:
        self.body = json.dumps(body).encode("ascii")  # \\u escapes, as JSON allows

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def central_peer():
    peer = Central()
    try:
        yield peer
    finally:
        peer.close()


def with_tag_text(text: str) -> dict:
    body = json.loads(json.dumps(GOOD))
    body["tags"]["levels"]["2"][1]["text"] = text
    return body


def test_a_lone_surrogate_in_a_pulled_tag_text_refuses_the_whole_config(
        device, central_peer, make_agent, caplog):
    central_peer.publish(GOOD)
    agent = make_agent(central_peer.url)
    assert agent.pull_config()
    good = agent.outbox.central_config()
    assert good[1]["tags"]["version"] == "3"
    central_peer.publish(with_tag_text("态度\udfff不好"))
    with caplog.at_level(logging.ERROR, logger="pingjia.agent"):
        agent.pull_config()
    assert agent.outbox.central_config() == good, "the last good config stays, texts and all"
    assert "refused" in caplog.text and "tags.levels.2[1].text" in caplog.text
    assert "lone surrogate" in caplog.text and "\udfff" not in caplog.text


@pytest.mark.parametrize("where, value", [
    ("tag", "态度\x00不好"), ("tag", "等候\ufffe"), ("text", "欢迎\x1b[2J"), ("text", "欢迎\ud800"),
    ("key", "x"),
])
def test_every_text_of_a_central_config_is_checked(where, value):
    body = json.loads(json.dumps(GOOD))
    if where == "tag":
        body["tags"]["levels"]["1"][0]["text"] = value
    elif where == "text":
        body["texts"]["welcome"] = value
    else:
        body["tags"]["levels"]["1"][0]["\udc80" + value] = 1
    with pytest.raises(ConfigError) as err:
        central.validate(body)
    message = str(err.value)
    assert "central config" in message
    assert not any(0xD800 <= ord(c) <= 0xDFFF or ord(c) < 0x20 and c != "\n" for c in message)
