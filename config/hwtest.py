"""`pingjia test buttons | display | reader | sound | network`: live checks of the device's parts.

While the terminal runs it owns the GPIO lines, the panel and the serial port (a second
process would get "GPIO busy"), so buttons, display and reader are tested through its
local API: the test runs as a screen of the terminal's own flow. When the terminal is
not running the command opens the hardware itself, as the settings describe it.

- display: test patterns (border, checkerboard, full, grey ramp), then every screen.
- buttons: press each button; the screen names it and its LED lights. Passes when all
  five were pressed within the time.
- reader: the reader's state and its last read (masked); standalone, waits for a card.
- sound: plays each spoken prompt in turn on sound.device (or the buzzer's patterns),
  here, not through the terminal: an ALSA device such as "default" or "plughw:..." is
  shared with the running terminal; a bare "hw:..." device or the buzzer's GPIO needs the
  terminal stopped. Fails when the device refuses a clip.
- network: name lookup, TCP connection and a signed GET of the device's config at
  central.url, and the clock against the server's time.

Exit codes: 0 passed, 1 a check failed (or a button was never pressed), 2 usage or
settings error.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
from urllib.parse import urlsplit

from config import local

STEP_S = 1.5
MAX_SKEW_S = 60     # beyond this the clock check fails (the receiver refuses 300 s)


def add_command(subparsers) -> None:
    p = subparsers.add_parser("test", help="check buttons, display, card reader or network",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="test_command", metavar="PART")
    for name, text, func in (("display", "show test patterns and every screen", display),
                             ("buttons", "press each button: the screen and LEDs follow", buttons),
                             ("reader", "the ID-card reader's state and a card read (masked)", reader),
                             ("sound", "play each spoken prompt (or buzzer pattern) in turn", sound),
                             ("network", "DNS, TCP, a signed request and the clock against central.url",
                              network)):
        t = sub.add_parser(name, help=text, description=text)
        local.add_settings_option(t)
        local.add_json_option(t)
        if name == "sound":
            t.add_argument("--prompt", action="append", metavar="NAME",
                           help="play only this prompt (repeatable); default: all of them")
        elif name != "network":
            local.add_terminal_options(t)
            t.add_argument("--local", action="store_true",
                           help="open the hardware here instead of asking the terminal "
                                "(the terminal must be stopped)")
        if name in ("display", "buttons", "reader"):
            t.add_argument("--seconds", type=_seconds, default=argparse.SUPPRESS,
                           help={"display": "how long the whole run takes (default 1.5 s a frame)",
                                 "buttons": "how long to wait for presses (default 60)",
                                 "reader": "standalone: how long to wait for a card (default 10)"}[name])
        if name in ("display", "buttons"):
            t.add_argument("--no-wait", action="store_true",
                           help="start the test on the terminal and return at once")
        t.set_defaults(func=func)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("whole seconds, e.g. 30") from None
    if not 1 <= value <= 600:
        raise argparse.ArgumentTypeError("between 1 and 600 seconds")
    return value


# --- through the terminal, or not ----------------------------------------------------------

class Refused(Exception):
    """The running terminal refused the test (e.g. 409 busy: someone is rating)."""


def _via_terminal(args, settings, call):
    """(answer, None) from the running terminal, or (None, why) to go on locally."""
    from terminal.client import ApiError

    if getattr(args, "local", False):
        return None, "--local"
    try:
        return local.ask_terminal(args, settings, call)
    except ApiError as exc:
        raise Refused(f"the terminal refused: {exc}") from None


def _note(args, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def _run_on_terminal(args, settings, kind: str):
    """Start the test on the terminal, follow it to its end; None when it is not running."""
    from terminal.client import ApiError, Unreachable

    seconds = getattr(args, "seconds", None)
    started, why = _via_terminal(args, settings, lambda c: c.start_test(kind, seconds))
    if started is None:
        return None, why
    client = local.client(args, settings)
    _note(args, f"{kind} test running on the terminal"
          + (" (press each button on the device)" if kind == "buttons" else
             " (a press shows the next frame, a hold ends it)"))
    if args.no_wait:
        return started, None
    shown = 0
    progress = started
    frame = None
    try:
        while progress.get("state") == "running":
            if kind == "display" and progress.get("frame") != frame:
                frame = progress.get("frame")  # the run takes a while: say where it is
                _note(args, f"frame {frame}/{progress.get('frames')}, "
                            f"{progress.get('remaining_s')} s left")
            time.sleep(0.3)
            progress = client.test_progress()
            shown = _show_presses(args, settings, progress, shown)
            if kind == "buttons" and set(settings.buttons.order) <= set(progress["buttons_seen"]):
                try:  # every button answered: no need to wait on
                    progress = client.stop_test()
                except ApiError:  # it ended by itself meanwhile
                    progress = client.test_progress()
                break
    except KeyboardInterrupt:
        try:
            progress = client.stop_test()
        except (ApiError, Unreachable):
            pass
    except (ApiError, Unreachable) as exc:  # e.g. the terminal stopped during the test
        raise Refused(f"lost the terminal during the test: {exc}") from None
    return progress, None


def _show_presses(args, settings, progress, shown: int) -> int:
    presses = progress.get("presses") or []
    if not args.json:
        for p in presses[shown:]:
            print(f"button {p['button']} {settings.levels.labels.get(p['button'], '')}: {p['kind']}",
                  flush=True)
    return max(shown, len(presses))


# --- display --------------------------------------------------------------------------------

def display(args) -> int:
    settings = local.load_settings(args)
    try:
        return _display(args, settings)
    except Refused as exc:
        return local.fail(str(exc))


def _display(args, settings) -> int:
    progress, why = _run_on_terminal(args, settings, "display")
    if progress is not None:
        data = {"test": "display", "via": "terminal", **progress}
        text = (f"display test {progress.get('state')}: frame {progress.get('frame')} of "
                f"{progress.get('frames')}; did every frame look right?")
        local.emit(args, data, text)
        return 0
    _note(args, f"the terminal does not answer ({why}): opening the display here")
    return _display_local(args, settings)


def _display_local(args, settings) -> int:
    from dataclasses import replace

    from drivers.display import DisplayError, open_display
    from drivers.fonts import find_fonts
    from drivers.pins import HardwareError
    from terminal import flow, screens
    from terminal.clock import FakeClock
    from terminal.screens import gallery

    try:
        fonts = find_fonts(tuple(settings.display.fonts))
        panel = open_display(settings.display)
    except (DisplayError, HardwareError, OSError, ValueError) as exc:
        return _failed(args, "display", f"cannot open the display: {exc}")
    from config import tags as tag_lists
    cfg = flow.FlowConfig.from_settings(settings, tag_lists.for_settings(settings))
    frames = gallery.count_test_frames(cfg)
    step = STEP_S if getattr(args, "seconds", None) is None else args.seconds / frames
    state = flow.initial(cfg, FakeClock().now())
    shown = 0
    try:
        for n in range(frames):
            test = flow.Testing("display", 0, 0, frame=n, frames=frames)
            image = gallery.render_test(replace(state, screen=test), panel.size, panel.mode,
                                        lambda s, size, mode: screens.render(s, size, mode, fonts))
            panel.show(image)
            shown += 1
            _note(args, f"frame {n + 1}/{frames}")
            time.sleep(step)
    except KeyboardInterrupt:
        pass
    finally:
        panel.close(screens.render_out_of_service(panel.size, panel.mode, fonts))
    health = panel.health()
    data = {"test": "display", "via": "local", "frames": frames, "shown": shown, "display": health}
    if health.get("errors"):
        return _failed(args, "display", f"{health['errors']} frames failed: {health['last_error']}",
                       data)
    local.emit(args, {**data, "ok": True},
               f"display test done: {shown} of {frames} frames on {health['driver']}; "
               "did every frame look right?")
    return 0


# --- buttons --------------------------------------------------------------------------------

def buttons(args) -> int:
    settings = local.load_settings(args)
    try:
        return _buttons(args, settings)
    except Refused as exc:
        return local.fail(str(exc))


def _buttons(args, settings) -> int:
    progress, why = _run_on_terminal(args, settings, "buttons")
    if progress is None:
        _note(args, f"the terminal does not answer ({why}): opening the buttons here")
        return _buttons_local(args, settings)
    if args.no_wait:
        local.emit(args, {"test": "buttons", "via": "terminal", **progress},
                   "button test started on the terminal")
        return 0
    return _button_verdict(args, settings, {"test": "buttons", "via": "terminal", **progress})


def _button_verdict(args, settings, data) -> int:
    order = list(settings.buttons.order)
    seen = set(data.get("buttons_seen") or [])
    missing = [b for b in order if b not in seen]
    data["missing"] = missing
    data["ok"] = not missing
    text = (f"all {len(order)} buttons work" if not missing else
            "never pressed: " + ", ".join(f"{b} {settings.levels.labels.get(b, '')}" for b in missing))
    local.emit(args, data, text)
    return 0 if not missing else 1


def _buttons_local(args, settings) -> int:
    import threading

    from drivers.buttons import ButtonPanel
    from drivers.pins import HardwareError, make_pin_factory

    presses = []
    lock = threading.Lock()
    try:
        factory = make_pin_factory(settings.buttons.pin_factory)
    except (HardwareError, OSError, ValueError) as exc:
        return _failed(args, "buttons", f"cannot open the GPIO: {exc}")
    panel = None

    def on_event(kind, level):
        with lock:
            presses.append({"button": level, "kind": kind})
        if panel is not None:
            panel.set_leds(frozenset({level}))
        if not args.json:
            print(f"button {level} {settings.levels.labels.get(level, '')}: {kind}", flush=True)

    try:
        panel = ButtonPanel(settings.buttons, on_event=on_event, pin_factory=factory)
        seconds = getattr(args, "seconds", None) or 60
        _note(args, f"press each button on the device (listening {seconds} s, Ctrl-C ends)")
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end and len({p["button"] for p in presses}) < 5:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        health = panel.health()
    except (HardwareError, OSError) as exc:
        return _failed(args, "buttons", f"cannot open the buttons: {exc}")
    finally:
        if panel is not None:
            panel.close()
        factory.close()
    with lock:
        seen = sorted({p["button"] for p in presses}, reverse=True)
    return _button_verdict(args, settings, {"test": "buttons", "via": "local", "presses": presses,
                                            "buttons_seen": seen, "pin_factory": health["pin_factory"]})


# --- reader ---------------------------------------------------------------------------------

def reader(args) -> int:
    settings = local.load_settings(args)
    try:
        return _reader(args, settings)
    except Refused as exc:
        return local.fail(str(exc))


def _reader(args, settings) -> int:
    answer, why = _via_terminal(args, settings, lambda c: c.reader_test())
    if answer is not None:
        data = {"test": "reader", "via": "terminal", **answer}
        last = answer.get("last_read")
        text = (f"card reader: {answer.get('state')} ({answer.get('driver')} on {answer.get('port')})"
                if answer.get("present") else f"card reader: none ({answer.get('detail')})")
        if last:
            text += (f"\nlast read {last.get('at')}: {last.get('result')} "
                     f"{last.get('card_type') or ''} {last.get('masked_name') or ''}").rstrip()
        ok = answer.get("state") == "connected" or (not answer.get("present")
                                                    and answer.get("mode") != "kiosk")
        local.emit(args, {**data, "ok": ok}, text)
        return 0 if ok else 1
    _note(args, f"the terminal does not answer ({why}): opening the reader here")
    return _reader_local(args, settings)


def _reader_local(args, settings) -> int:
    from drivers.idcard import IdCardError, IdCardReader, NoCard

    r = settings.reader
    if r.driver == "none":
        return _failed(args, "reader", "no card reader in the settings (reader.driver = \"none\")")
    sim = None
    port = r.port
    try:
        if r.driver == "simulated":
            from drivers.idcard.simulated import SimulatedReader
            sim = SimulatedReader().start()
            port = sim.link
        if not port:
            return _failed(args, "reader", "reader.port is not set")
        seconds = getattr(args, "seconds", None) or 10
        with IdCardReader(port, r.baud or None) as device:
            sam = device.sam_id()
            data = {"test": "reader", "via": "local", "port": port, "baud": device.baud, "sam_id": sam}
            _note(args, f"reader ready on {port} at {device.baud} baud (SAM {sam}); place a card "
                        f"(waiting {seconds} s)")
            try:
                card = device.wait_for_card(seconds)
            except NoCard:
                local.emit(args, {**data, "ok": True, "card": None},
                           f"reader works (SAM {sam}); no card was placed")
                return 0
            masked = card.masked()
            local.emit(args, {**data, "ok": True, "card": masked},
                       f"reader works: {masked['card_type']} {masked['name']} {masked['id']}")
            return 0
    except (IdCardError, OSError, ValueError) as exc:
        return _failed(args, "reader", f"the reader on {port} does not work: {exc}")
    finally:
        if sim is not None:
            sim.close()


# --- network --------------------------------------------------------------------------------

def sound(args) -> int:
    settings = local.load_settings(args)
    from drivers.sound import PATTERNS, PROMPTS, open_sound
    known = PROMPTS if settings.sound.driver != "buzzer" else tuple(PATTERNS)
    names = args.prompt or list(PROMPTS)
    unknown = [n for n in names if n not in known]
    if unknown:
        return local.fail(f"unknown prompt {unknown[0]!r}; known: " + ", ".join(known), 2)
    if settings.sound.driver == "none":
        return local.fail(f"sound.driver is \"none\" in {settings.source}: nothing to play", 2)
    pin_factory = None
    if settings.sound.driver == "buzzer":
        from drivers.pins import make_pin_factory
        pin_factory = make_pin_factory(settings.buttons.pin_factory)
    played = []
    try:
        player = open_sound(settings.sound, pin_factory)
    except Exception as exc:
        return _failed(args, "sound", f"cannot open the sound: {exc}")
    try:
        for name in names:
            errors = player.health().get("errors", 0)
            _note(args, f"playing {name}")
            player.play(name)
            if hasattr(player, "wait"):
                player.wait(30)
            else:
                time.sleep(sum(seconds for _, seconds in PATTERNS[name]) + 0.2)
            health = player.health()
            ok = health.get("errors", 0) == errors
            played.append({"prompt": name, "ok": ok,
                           **({} if ok else {"error": health.get("last_error")})})
        health = player.health()
    finally:
        player.close()
        if pin_factory is not None:
            pin_factory.close()
    ok = all(p["ok"] for p in played)
    text = "\n".join(f"{'ok  ' if p['ok'] else 'FAIL'} {p['prompt']:<14} {p.get('error', '')}".rstrip()
                     for p in played)
    for problem in health.get("problems") or []:
        text += f"\nclip: {problem}"
    local.emit(args, {"test": "sound", "ok": ok, "driver": settings.sound.driver,
                      "device": settings.sound.device, "played": played,
                      "problems": health.get("problems") or []}, text)
    return 0 if ok else 1


def network(args) -> int:
    settings = local.load_settings(args)
    url = settings.central.url
    if not url:
        return local.fail(f"central.url is not set in {settings.source}: nothing to test", 2)
    steps = network_checks(settings)
    ok = all(s["ok"] for s in steps)
    text = "\n".join(f"{'ok  ' if s['ok'] else 'FAIL'} {s['step']:<10} {s['detail']}" for s in steps)
    local.emit(args, {"test": "network", "url": url, "ok": ok, "steps": steps}, text)
    return 0 if ok else 1


def network_checks(settings, wall=time.time) -> list[dict]:
    """DNS, TCP, signed GET and clock, each {"step", "ok", "detail", "ms"}; stops at the
    first failure (a later step cannot work without the earlier)."""
    url = settings.central.url
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = float(settings.central.timeout_s)
    steps = []

    def step(name, func):
        t = time.monotonic()
        try:
            ok, detail = func()
        except Exception as exc:  # each failure is the check's answer, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        steps.append({"step": name, "ok": ok, "detail": detail,
                      "ms": round((time.monotonic() - t) * 1000)})
        return ok

    addresses = []

    def dns():
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses.extend(sorted({i[4][0] for i in infos}))
        return True, f"{host} -> {', '.join(addresses)}"

    def tcp():
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"connected to {host}:{port}"

    seen = {}

    def signed():
        from terminal.central_client import Central, Transient
        from terminal.secret import SecretError, load_secret
        try:
            secret = load_secret(settings)
        except SecretError as exc:
            return False, str(exc)
        central = Central(settings.central, device_id=settings.device.id, secret=secret,
                          hash_alg=settings.device.hash_alg, wall=wall,
                          on_server_time=lambda t, mono: seen.update(server_time=t))
        path = f"/v1/devices/{settings.device.id}/config"
        try:
            answer = central.call("GET", path)
            detail = f"GET {path}: {answer.status}, signature accepted"
        except Transient as exc:
            if exc.status == 404 and "no_config" in str(exc):  # signed and accepted; no config
                detail = f"signature accepted; no settings for {settings.device.id} there"
            else:
                why = {401: " (the central system refuses our signature: wrong secret or device "
                            "id; enrol again)", 404: " (unknown device or path)"}.get(exc.status, "")
                return False, f"{exc}{why}"
        finally:
            central.close()
        seen["skew"] = central.skew_s
        return True, detail

    def clock():
        import requests
        from email.utils import parsedate_to_datetime

        offset, basis = seen.get("skew") or 0, "clock_skew answer"
        if not offset and "server_time" in seen:
            offset, basis = int(seen["server_time"] - wall()), "server_time"
        elif not offset:
            date = requests.get(url, timeout=timeout).headers.get("Date")
            if not date:
                return False, "the server's answers carry no time to compare with"
            offset, basis = int(parsedate_to_datetime(date).timestamp() - wall()), "Date header"
        if abs(offset) > MAX_SKEW_S:
            return False, (f"the device clock is {-offset:+d} s off the server's ({basis}): check "
                           "NTP (timedatectl); records made now are corrected later")
        return True, f"within {abs(offset)} s of the server ({basis})"

    for name, func in (("dns", dns), ("tcp", tcp), ("signed", signed), ("clock", clock)):
        if not step(name, func):
            break
    return steps


def _failed(args, test: str, message: str, data=None) -> int:
    local.emit(args, {"test": test, "ok": False, "error": message, **(data or {})}, "")
    return local.fail(message)
