"""Central config (ETag pull, validation, the terminal taking it up), heartbeat, metrics."""
from __future__ import annotations

import json
import logging
import re

import pytest

from config import settings as config_settings
from config.errors import ConfigError
from config.tags import builtin
from terminal import central, flow
from terminal.store import DB_NAME, Reader
from terminal.sync_state import central_config, central_etag
from tests.agent.conftest import DEVICE_ID, drafts, fill, open_store

PAST = "2024-05-01T09:00:00+08:00"
GOOD = {
    "tags": {"version": "3", "levels": {
        "5": [{"code": "501", "text": "一次办好"}], "4": [{"code": "401", "text": "指引清楚"}],
        "3": [{"code": "301", "text": "基本顺利"}],
        "2": [{"code": "201", "text": "等候太久"}, {"code": "207", "text": "态度不好"}],
        "1": [{"code": "101", "text": "多次跑动"}]}},
    "texts": {"welcome": "欢迎光临", "thanks": "谢谢您"},
    "invite_timeout_s": 45,
    "tags_timeout_s": 20,
}


def publish(rx, body) -> None:
    (rx.config_dir / f"{DEVICE_ID}.json").write_text(json.dumps(body, ensure_ascii=False),
                                                     encoding="utf-8")


def watch(statuses):
    """Status codes of the config requests an agent makes (a requests response hook)."""
    def hook(r, *args, **kwargs):
        if r.request.path_url.endswith("/config"):
            statuses.append((r.status_code, r.request.headers.get("If-None-Match")))
    return hook


def base_config():
    return flow.FlowConfig.from_settings(config_settings.defaults(), builtin(), "test")


def test_config_pulled_with_etag_stored_then_304(device, central_rx, make_agent):
    publish(central_rx, GOOD)
    agent = make_agent(central_rx.url)
    seen = []
    agent.central.session.hooks["response"].append(watch(seen))

    assert agent.pull_config() and agent.pull_config()

    [(first, sent_none), (second, sent_etag)] = seen
    assert first == 200 and sent_none is None
    assert second == 304 and sent_etag
    etag, body = agent.outbox.central_config()
    assert etag == sent_etag and body == central.validate(GOOD)
    assert agent.stats["configs"] == 1


def test_bad_config_is_refused_and_the_last_good_one_kept(device, central_rx, make_agent, caplog):
    publish(central_rx, GOOD)
    agent = make_agent(central_rx.url)
    assert agent.pull_config()
    good = agent.outbox.central_config()
    bad = json.loads(json.dumps(GOOD))
    bad["tags"]["levels"]["2"][0]["code"] = "501"  # a level-5 code on level 2
    bad["invite_timeout_s"] = -1
    publish(central_rx, bad)
    with caplog.at_level(logging.ERROR, logger="pingjia.agent"):
        assert agent.pull_config()
    assert agent.outbox.central_config() == good
    assert "refused" in caplog.text and "tags.levels.2[0].code" in caplog.text
    assert "invite_timeout_s" in caplog.text or "invite_s" in caplog.text


def test_the_terminal_takes_up_a_pulled_config_without_a_restart(device, central_rx, make_agent):
    reader = Reader(device / DB_NAME)
    watcher = central.Watcher(base_config(), lambda: central_etag(reader.db),
                              lambda: central_config(reader.db))
    try:
        assert watcher.poll() is None  # nothing pulled yet: the local settings stand
        publish(central_rx, GOOD)
        agent = make_agent(central_rx.url)
        agent.pull_config()
        cfg = watcher.poll()
        assert cfg is not None and cfg.tags.version == "3"
        assert [t.code for t in cfg.tags.levels[2]] == ["201", "207"]
        assert cfg.texts["welcome"] == "欢迎光临" and cfg.texts["rate_prompt"] == base_config().texts["rate_prompt"]
        assert cfg.invite_ms == 45_000 and cfg.tags_ms == 20_000
        assert watcher.poll() is None  # unchanged etag: nothing to do

        publish(central_rx, {"texts": {"thanks": "多谢"}})  # central values replace, never pile up
        agent.pull_config()
        cfg = watcher.poll()
        assert cfg.texts["thanks"] == "多谢" and cfg.texts["welcome"] == base_config().texts["welcome"]
        assert cfg.tags == base_config().tags and cfg.invite_ms == base_config().invite_ms
    finally:
        reader.close()


def test_watcher_keeps_the_applied_config_when_the_stored_one_is_broken(device):
    with open_store(device) as s:
        s.db.execute("INSERT INTO central_config VALUES (1, 'e1', ?, 'now')",
                     [json.dumps(GOOD, ensure_ascii=False)])
        watcher = central.Watcher(base_config(), lambda: central_etag(s.db), lambda: central_config(s.db))
        applied = watcher.poll()
        assert applied.tags.version == "3"
        s.db.execute("UPDATE central_config SET etag = 'e2', body = '{\"tags\": {\"version\": 5}}'")
        assert watcher.poll() is None and watcher.config is applied


@pytest.mark.parametrize("body, where", [
    ([], ""), ({"tags": "x"}, "tags"), ({"texts": {"welcome": "字" * 41}}, "welcome"),
    ({"tags": {"version": "2", "levels": {"1": [{"code": "101", "text": "a"}]}}}, "levels.2"),
    ({"invite_timeout_s": 45, "invite_s": 50}, "invite_timeout_s"),
])
def test_validate_refuses_whole_configs_with_a_clear_place(body, where):
    with pytest.raises(ConfigError) as err:
        central.validate(body)
    assert where in str(err.value)


def test_unknown_keys_of_a_newer_central_system_are_ignored():
    assert central.validate({"texts": {"thanks": "谢谢"}, "future_key": 1}) == {"texts": {"thanks": "谢谢"}}


# --- heartbeat ----------------------------------------------------------------------------

def test_heartbeat_carries_the_health_summary(device, central_rx, make_agent):
    with open_store(device) as s:
        s.append(drafts(3, rated_at=PAST) + drafts(1, start=4, level=1, tags=(), rated_at=PAST))
    agent = make_agent(central_rx.url, batch_size=2)
    agent.upload_batch()  # two delivered, two pending
    assert agent.heartbeat()
    [beat] = central_rx.heartbeats(DEVICE_ID)
    summary = beat.get("summary", beat)
    assert summary["device_id"] == DEVICE_ID
    assert summary["queue_depth"] == 2 and summary["rejected"] == 0
    assert summary["oldest_unsent_at"] == PAST
    assert summary["oldest_unsent_age_s"] > 0
    assert summary["last_upload_at"] and summary["last_success_at"]
    assert summary["clock"]["synced"] is True and summary["clock"]["basis"] == "ntp"
    assert set(summary["versions"]) == {"pingjia", "python"}
    agent.drain()
    assert agent.heartbeat()
    latest = central_rx.heartbeats(DEVICE_ID)[-1]
    latest = latest.get("summary", latest)
    assert latest["queue_depth"] == 0 and latest["rejected"] == 1 and latest["oldest_unsent_at"] is None


def test_heartbeat_failure_is_not_fatal(device, make_agent):
    agent = make_agent("http://127.0.0.1:9")
    assert agent.heartbeat() is False and agent.stats["heartbeats"] == 0


# --- metrics ------------------------------------------------------------------------------

def samples(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_textfile(device, central_rx, make_agent, tmp_path):
    prom = tmp_path / "textfile" / "pingjia.prom"
    prom.parent.mkdir()
    with open_store(device) as s:
        s.append(drafts(3, level=5, rated_at=PAST) + drafts(2, start=4, level=4)
                 + drafts(1, start=6, level=None) + drafts(1, start=7, level=2, tags=()))
    agent = make_agent(central_rx.url, metrics_file=str(prom))
    agent.write_metrics(force=True)
    before = samples(prom.read_text())
    assert before["pingjia_queue_depth"] == 7 and before["pingjia_uploaded_records_total"] == 0
    assert before["pingjia_oldest_unsent_age_seconds"] > 0
    assert before["pingjia_last_success_timestamp_seconds"] == 0

    agent.drain()
    agent.write_metrics(force=True)
    text = prom.read_text()
    after = samples(text)
    assert after["pingjia_queue_depth"] == 0 and after["pingjia_oldest_unsent_age_seconds"] == 0
    assert after["pingjia_uploaded_records_total"] == 6 and after["pingjia_rejected_records"] == 1
    assert after["pingjia_last_success_timestamp_seconds"] > 1.7e9
    assert after['pingjia_ratings_total{kind="rating",level="5"}'] == 3
    assert after['pingjia_ratings_total{kind="rating",level="4"}'] == 2
    assert after['pingjia_ratings_total{kind="rating",level="2"}'] == 1
    assert after['pingjia_ratings_total{kind="rating",level="1"}'] == 0
    assert after['pingjia_ratings_total{kind="unrated",level="none"}'] == 1
    for name in ("pingjia_queue_depth", "pingjia_uploaded_records_total", "pingjia_ratings_total"):
        assert re.search(rf"^# TYPE {name} (gauge|counter)$", text, re.M)
    assert [p.name for p in prom.parent.iterdir()] == ["pingjia.prom"]  # no temp file left


def test_no_metrics_file_unless_configured(device, central_rx, make_agent, tmp_path):
    fill(device, 2)
    agent = make_agent(central_rx.url)
    agent.drain()
    agent.write_metrics(force=True)
    assert not list(tmp_path.rglob("*.prom"))


def test_a_running_terminal_shows_the_pulled_config_without_a_restart(device, central_rx,
                                                                     make_agent, tmp_path):
    """The whole path: the agent stores the centre's config, the running terminal's
    health poll takes it up, the next visit uses its texts and tags."""
    import threading

    from config.settings import defaults
    from terminal.runtime import Runtime
    from tests.agent.conftest import SECRET, wait_until
    from tests.terminal.flowkit import business

    settings = defaults().with_values({
        "device": {"id": DEVICE_ID, "data_dir": str(device)},
        "buttons": {"pin_factory": "mock"}, "display": {"driver": "dummy"},
        "sound": {"driver": "none"}})
    runtime = Runtime(settings, secret=SECRET, api=False)
    stop = threading.Event()
    loop = threading.Thread(target=runtime.run, args=(stop,), daemon=True)
    loop.start()
    try:
        term = runtime.terminal
        assert term.snapshot().config.texts["welcome"] != "欢迎光临"
        publish(central_rx, GOOD)
        make_agent(central_rx.url).pull_config()
        wait_until(lambda: term.snapshot().config.texts["welcome"] == "欢迎光临",
                   timeout=10, what="the terminal to take up the central texts")
        assert term.snapshot().config.invite_ms == 45_000

        term.post(flow.Invite("v-central", (business(1, "户籍迁入"),), flow.Staff("0131", "王芳")))
        wait_until(lambda: isinstance(term.snapshot().screen, flow.Invited), what="the invitation")
        term.post(flow.Press(2))
        screen = wait_until(lambda: isinstance(term.snapshot().screen, flow.Tagging)
                            and term.snapshot().screen, what="the reasons")
        assert [t.code for t in screen.options] == ["201", "207"]  # the centre's list, version 3
    finally:
        stop.set()
        loop.join(timeout=5)
        runtime.close()
