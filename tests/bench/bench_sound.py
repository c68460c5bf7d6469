"""Clip start latency: from the invitation to the first samples of its spoken prompt.

    python tests/bench/bench_sound.py [--clips 60]

The real Terminal event thread, flow, screens and the real sound driver (sound.driver =
"clips": one `aplay` per clip) playing to an ALSA `file` device that stands in for the
speaker (declared in a private ~/.asoundrc, so no sound card is needed). Each round
posts an invitation and notes three moments: posted, the frame handed to the display,
and the first bytes of the clip reaching ALSA (the file device's file grows). The
target (issue 12) is a clip starting within 300 ms of its screen.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from config import settings as config_settings  # noqa: E402
from config.tags import builtin  # noqa: E402
from drivers.display import open_display  # noqa: E402
from drivers.fonts import find_fonts  # noqa: E402
from drivers.sound import open_sound  # noqa: E402
from terminal import flow, screens  # noqa: E402
from terminal.clock import SystemClock  # noqa: E402
from terminal.service import Terminal  # noqa: E402
from terminal.store import DB_NAME, Store  # noqa: E402
from tests.bench.bench_terminal import TimedDisplay  # noqa: E402
from tests.bench.figures import add_dir_option, line, percentile, work_dir  # noqa: E402

SECRET = b"bench-secret-0123456789abcdef"


def clip_starts(directory: Path, rounds: int):
    raw = directory / "speaker.raw"
    home = directory / "home"
    home.mkdir()
    (home / ".asoundrc").write_text('pcm.pjbench {\n  type file\n  slave.pcm "null"\n'
                                    f'  file "{raw}"\n  format "raw"\n}}\n')
    os.environ["HOME"] = str(home)   # the aplay processes read this ~/.asoundrc
    settings = config_settings.defaults().with_values({
        "display": {"driver": "dummy"}, "site": {"require_staff": False},
        "sound": {"driver": "clips", "device": "pjbench", "volume": 100}})
    display = TimedDisplay(open_display(settings.display))
    sound = open_sound(settings.sound, None)
    store = Store(directory / DB_NAME, device_id="PJQ-BENCH-1", secret=SECRET,
                  hash_alg="sha256", boot_id="bench")
    term = Terminal(flow.FlowConfig.from_settings(settings, builtin(), "bench"), store=store,
                    clock=SystemClock(), display=display, sound=sound,
                    render=partial(screens.render, fonts=find_fonts(())))
    stop = threading.Event()
    thread = threading.Thread(target=term.run, args=(stop,), daemon=True)
    thread.start()
    sound.wait(5)                                  # the probe at open
    from_post, from_frame = [], []
    try:
        for n in range(rounds):
            raw.unlink(missing_ok=True)
            item = flow.Business(f"BENCH{n:06d}", "居民身份证换领")
            posted = time.perf_counter()
            reply = term.request(lambda rid: flow.Invite(f"b-{n}", (item,), request_id=rid))
            if reply.status != 201:
                raise RuntimeError(f"invitation refused: {reply.body}")
            while not (raw.exists() and raw.stat().st_size > 0):
                if time.perf_counter() - posted > 5:
                    raise RuntimeError(f"no sound within 5 s: {sound.health()}")
                time.sleep(0.0005)
            started = time.perf_counter()
            while display.at < posted:             # this invitation's frame
                time.sleep(0.0005)
            from_post.append((started - posted) * 1000)
            # the driver starts the clip before the frame is drawn: 0 then
            from_frame.append(max(0.0, (started - display.at) * 1000))
            term.request(lambda rid: flow.Cancel(rid))
            time.sleep(0.05)
        health = sound.health()
    finally:
        stop.set()
        term.post(flow.Tick())
        thread.join(5)
        sound.close()
        store.close()
    if health["errors"]:
        raise RuntimeError(f"the sound device failed: {health}")
    return from_post, from_frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60, help="invitations to time (default 60)")
    add_dir_option(parser)
    args = parser.parse_args(argv)
    with work_dir(args) as tmp:
        from_post, from_frame = clip_starts(Path(tmp), args.clips)
    print(f"sound: clip start, {len(from_post)} invitations, aplay to an ALSA file device")
    print(line("invitation→clip start p50", percentile(from_post, 50), "ms"))
    print(line("invitation→clip start p99", percentile(from_post, 99), "ms", 300.0))
    print(line("screen→clip start p50", percentile(from_frame, 50), "ms"))
    print(line("screen→clip start p99", percentile(from_frame, 99), "ms", 300.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
