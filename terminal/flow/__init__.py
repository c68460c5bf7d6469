"""The terminal's flow: a pure state machine and its model.

`step(state, event, now) -> (state, effects)`; screens and LEDs are functions of state.
"""
from terminal.flow.model import *  # noqa: F401,F403 - the flow's vocabulary
from terminal.flow.window import fail, initial, leds, next_deadline, open_visit, step  # noqa: F401
