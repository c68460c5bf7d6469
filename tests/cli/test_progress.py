"""The progress bar draws on a terminal only, and never more than ten times a second."""
from __future__ import annotations

import io
from types import SimpleNamespace

from config.cli.progress import Progress, for_args


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draws_on_a_terminal_and_ends_the_line():
    out, t = Tty(), [0.0]
    with Progress(4, "export", stream=out, clock=lambda: t[0]) as bar:
        for _ in range(4):
            t[0] += 0.2
            bar.advance()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 4 and frames[-1].endswith("4/4 100%\n")
    assert "export [" in frames[0] and " 1/4 " in frames[0]


def test_redraws_at_most_ten_times_a_second_but_always_the_last():
    out = Tty()
    with Progress(1000, stream=out, clock=lambda: 5.0) as bar:
        for _ in range(1000):
            bar.advance()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 2 and "1000/1000" in frames[-1]


def test_silent_when_not_a_terminal_or_asked_for_json():
    plain = io.StringIO()
    with Progress(3, stream=plain) as bar:
        bar.advance(3)
    assert plain.getvalue() == ""
    bar = for_args(SimpleNamespace(json=True), 3, "x")
    assert bar.enabled is False
