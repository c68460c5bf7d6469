"""The five rating levels: their codes and their names.

A level is 5 (best) to 1 (worst), as the 好差评 interfaces number them; its name is the
official one (基本满意, not the vendors' 一般). The names are also the default labels on
the device (`levels.labels` in the settings), the words the command line prints for a
level, and the Zhejiang profile's text for its `satisfaction` values (docs/profiles.md).
"""
from __future__ import annotations

LEVELS = (5, 4, 3, 2, 1)
# the levels that ask for reasons (差评: the person chooses what went wrong)
BAD = (2, 1)
NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
