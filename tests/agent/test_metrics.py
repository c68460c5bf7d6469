"""agent/metrics.py: the node_exporter textfile, from a real device store's counts."""
from __future__ import annotations

from agent import metrics
from agent.outbox import Outbox
from terminal.store import DB_NAME
from tests.agent.conftest import DEVICE_ID, drafts, open_store


def samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_every_metric_has_help_and_type_and_every_level_is_listed():
    text = metrics.render(queue_depth=0, oldest_unsent_age_s=0, uploaded=0, rejected=0,
                          last_success=None, ratings=[])
    for name in ("pingjia_queue_depth", "pingjia_oldest_unsent_age_seconds",
                 "pingjia_uploaded_records_total", "pingjia_rejected_records",
                 "pingjia_last_success_timestamp_seconds", "pingjia_ratings_total"):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text
    got = samples(text)
    assert all(got[f'pingjia_ratings_total{{kind="rating",level="{lv}"}}'] == 0 for lv in range(1, 6))
    assert got['pingjia_ratings_total{kind="unrated",level="none"}'] == 0
    assert got["pingjia_last_success_timestamp_seconds"] == 0


def test_the_counts_of_a_device_store_render(device):
    with open_store(device) as s:
        s.append(drafts(2) + drafts(1, start=3, level=2) + drafts(1, start=4, level=None))
    box = Outbox(device / DB_NAME, device_id=DEVICE_ID, hash_alg="sha256")
    try:
        box.mark([(1, "delivered", None), (2, "rejected", "no")], 1, "2026-11-22T10:00:00+08:00")
        totals = box.totals()
    finally:
        box.close()
    got = samples(metrics.render(queue_depth=totals["pending"], oldest_unsent_age_s=1.23456,
                                 uploaded=totals["delivered"], rejected=totals["rejected"],
                                 last_success=1700000000.5, ratings=totals["ratings"]))
    assert got["pingjia_queue_depth"] == 2 and got["pingjia_uploaded_records_total"] == 1
    assert got["pingjia_rejected_records"] == 1
    assert got["pingjia_oldest_unsent_age_seconds"] == 1.235
    assert got["pingjia_last_success_timestamp_seconds"] == 1700000000.5
    assert got['pingjia_ratings_total{kind="rating",level="5"}'] == 2
    assert got['pingjia_ratings_total{kind="rating",level="2"}'] == 1
    assert got['pingjia_ratings_total{kind="unrated",level="none"}'] == 1


def test_the_textfile_is_replaced_whole(tmp_path):
    path = tmp_path / "pingjia.prom"
    path.write_text("old\n")
    metrics.write_textfile(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pingjia.prom"]  # no temp file left
