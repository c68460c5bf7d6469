"""The central side of `pingjia simulate`: the reference receiver with a sample lookup
table for the simulated cards, and the sync agent uploading to it.

The receiver and the agent are imported when the simulator starts them, so building the
`pingjia` command line loads neither (tests/cli/test_entry.py).
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

from terminal.clock import CHINA

RECEIVER_DIR = "receiver"

# The receiver's sample lookup: what each fictitious card holder finished today.
# (task_name, task_code, dept_name, staff_name, hours before now)
SAMPLE_FINISHED = {
    "resident": (
        ("不动产登记（二手房买卖转移登记）", "11330106002489123X4330110000", "区自然资源和规划分局", "陈静", 3),
        ("社会保障卡申领", "11330106002491234K4330140010", "区人力资源和社会保障局", "李建国", 2),
        ("营业执照变更登记", "11330106MB1234567G4330130011", "区市场监督管理局", "王芳", 1),
    ),
    "foreign_2023": (
        ("外国人工作许可延期", "11330106002494567P4330180012", "区科学技术局", "陈静", 1),
    ),
}


def sample_lookup(now: datetime) -> dict:
    """The receiver's lookup table for the simulated cards (all data fictitious).

    Serial numbers carry the start time, so every run of the simulator has businesses
    waiting to be rated (a rated one is never offered again: 一次一评)."""
    from drivers.idcard.simulated import SAMPLE_CARDS
    stamp = now.strftime("%Y%m%d%H%M")
    people, n = [], 0
    for card_type, finished in SAMPLE_FINISHED.items():
        card = SAMPLE_CARDS[card_type]().card
        businesses = []
        for name, code, dept, staff, hours in finished:
            n += 1
            businesses.append({
                "project_no": f"330106{stamp}{n:02d}", "task_name": name, "task_code": code,
                "dept_name": dept, "staff_name": staff,
                "finished_at": (now - timedelta(hours=hours)).replace(microsecond=0).isoformat()})
        people.append({"cert_type": card.cert_type, "cert_no": card.id_number,
                       "businesses": businesses})
    return {"people": people}


class Central:
    """The reference receiver and the sync agent beside the simulated terminal."""

    def __init__(self, data_dir: Path, device_id: str, secret: bytes, hash_alg: str,
                 port: int = 0):
        from agent.receiver import Receiver
        self.dir = Path(data_dir) / RECEIVER_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lookup_file = self.dir / "lookup.json"
        self.lookup_file.write_text(json.dumps(sample_lookup(datetime.now(CHINA)),
                                               ensure_ascii=False, indent=1), encoding="utf-8")
        self.device_id = device_id
        self.receiver = Receiver(self.dir / "receiver.db",
                                 devices={device_id: {"secret": secret, "hash_alg": hash_alg}},
                                 lookup_file=self.lookup_file, port=port)
        self.agent = None
        self._thread = None
        self.online = False

    def start(self) -> "Central":
        self.receiver.start()
        self.online = True
        return self

    @property
    def url(self) -> str:
        return self.receiver.url

    def start_agent(self, settings, secret: bytes) -> None:
        from agent.sync import Agent
        self.agent = Agent(settings, secret=secret)
        self._thread = threading.Thread(target=self.agent.run, name="sim-agent", daemon=True)
        self._thread.start()

    def toggle(self) -> bool:
        """Take the receiver off line or bring it back (same port); True when on line."""
        if self.online:
            self.receiver.stop()
        else:
            self.receiver.start()
        self.online = not self.online
        return self.online

    def close(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self.agent.close()
            self.agent = None
        self.receiver.close()
