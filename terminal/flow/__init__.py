"""The terminal's flow: a pure state machine and its model.

`step(state, event, now) -> (state, effects)`; screens and LEDs are functions of state.
"""
from terminal.flow.model import *  # noqa: F401,F403 - the flow's vocabulary
from terminal.flow.window import fail, initial, open_visit  # noqa: F401
# `step`, `next_deadline` and `leds` of the kiosk: they hand everything but the kiosk's own
# screens and events to the window's (terminal/flow/kiosk.py).
from terminal.flow.kiosk import (CHOOSE_ROLES, Choosing, LookingUp, Notice, leds,  # noqa: F401
                                 next_deadline, step)
