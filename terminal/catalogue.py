"""A sample catalogue of realistic hall services, for the simulator and demos.

Names follow common 政务服务 item names; codes, serial numbers and departments are
made up (the unified social credit codes are well-formed but fictitious).
"""
from __future__ import annotations

import random
from datetime import datetime

from terminal.flow.model import Business

# (task_name, task_code, dept_name, dept_code)
SERVICES = (
    ("不动产登记（二手房买卖转移登记）", "11330106002489123X4330110000", "区自然资源和规划分局", "11330106002489123X"),
    ("户籍迁入", "11330106002490012P4330120001", "区公安分局", "11330106002490012P"),
    ("营业执照设立登记", "11330106MB1234567G4330130002", "区市场监督管理局", "11330106MB1234567G"),
    ("居住证办理", "11330106002490012P4330120003", "区公安分局", "11330106002490012P"),
    ("城乡居民基本养老保险参保登记", "11330106002491234K4330140004", "区人力资源和社会保障局", "11330106002491234K"),
    ("失业保险金申领", "11330106002491234K4330140005", "区人力资源和社会保障局", "11330106002491234K"),
    ("医疗保险关系转移接续", "11330106MB0987654Q4330150006", "区医疗保障局", "11330106MB0987654Q"),
    ("食品经营许可（新办）", "11330106MB1234567G4330130007", "区市场监督管理局", "11330106MB1234567G"),
    ("建设工程竣工验收备案", "11330106002492345M4330160008", "区住房和城乡建设局", "11330106002492345M"),
    ("公共场所卫生许可", "11330106002493456N4330170009", "区卫生健康局", "11330106002493456N"),
)

STAFF = (("0131", "王芳"), ("0207", "李建国"), ("0315", "陈静"))


def sample_business(rng: random.Random | None = None, now: datetime | None = None) -> Business:
    """A business with a fresh serial number (业务流水号) in a common layout."""
    return sample_businesses(rng, 1, now)[0]


def sample_businesses(rng: random.Random | None = None, n: int = 1,
                      now: datetime | None = None) -> tuple[Business, ...]:
    """`n` different businesses (a joint case, 联办件, when n > 1): other services, other
    serial numbers."""
    rng = rng or random.Random()
    stamp = (now or datetime.now()).strftime("%Y%m%d")
    serials = rng.sample(range(10**6), n)
    return tuple(Business(project_no=f"330106{stamp}{serial:06d}", task_name=name,
                          task_code=code, dept_code=dept_code, dept_name=dept)
                 for (name, code, dept, dept_code), serial in zip(rng.sample(SERVICES, n), serials))


def sample_staff(rng: random.Random | None = None) -> tuple[str, str]:
    return (rng or random.Random()).choice(STAFF)
