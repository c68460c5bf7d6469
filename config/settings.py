"""Device settings: the schema, its defaults, and loading a TOML file into it.

Every setting is declared once, here, with its default, a check and a one-line doc
(config/fields.py holds how a field is declared, checked and built from its table).
The documented default file (`config/pingjia.toml`) must agree with these defaults;
a test holds the two together. Loading collects every problem in the file before it
gives up, so a technician fixes a file in one pass, and the service never starts on a
half-valid file.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from config import qr, tomlfile
from config.errors import ConfigError, Problem, locate_key
from config.fields import (build_section, copy_value, int_range, ip_literal, matches, max_len,
                           one_of, setting)
from config.levels import LEVELS, NAMES
from config.text import shorten

DEFAULT_PATH = "/etc/pingjia/pingjia.toml"


def _gpio_map(value):
    if set(value) != set(LEVELS):
        return "needs exactly one entry for each level 1 to 5"
    pins = list(value.values())
    if any(not 0 <= p <= 53 for p in pins):
        return "GPIO numbers (BCM) must be between 0 and 53"
    if len(set(pins)) != len(pins):
        return "each level needs its own GPIO"
    return None


def _labels(value):
    if set(value) != set(LEVELS):
        return "needs exactly one label for each level 1 to 5"
    if any(not 1 <= len(v) <= 8 for v in value.values()):
        return "labels must be 1 to 8 characters"
    return None


def _order(value):
    if sorted(value) != [1, 2, 3, 4, 5]:
        return "must list the levels 1 to 5 once each, left to right"
    return None


def _card_types(value):
    known = ("resident", "hk_mo_tw", "foreign_2017", "foreign_2023")
    unknown = [v for v in value if v not in known]
    if unknown:
        return f"unknown card type {unknown[0]!r}; known: " + ", ".join(known)
    return None


# scheme://host[:port], as a browser sends it in Origin: no path, no wildcard
_ORIGIN = re.compile(r"(https?)://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?")


def _origins(value):
    for origin in value:
        m = _ORIGIN.fullmatch(origin)
        if not m or (m.group(4) and not 1 <= int(m.group(4)[1:]) <= 65535):
            return (f"{origin!r} is not an origin: scheme, host and optional port in lower "
                    "case, e.g. \"https://ywxt.example.gov.cn\" or \"http://10.1.2.3:8080\" "
                    "(no path, no trailing /, no *)")
    return None


HARDWARE_DISPLAYS = ("ssd1306", "sh1106", "ssd1309", "ssd1322", "ssd1325")
# luma.core.interface.serial.spi only takes these bus speeds
SPI_SPEEDS_HZ = (500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000, 20_000_000,
                 24_000_000, 28_000_000, 32_000_000)
# BCM lines the buses own: I2C1 SDA/SCL, SPI0 CE1/CE0/MISO/MOSI/SCLK
BUS_PINS = {"i2c": (2, 3), "spi": (7, 8, 9, 10, 11)}


# --- sections -----------------------------------------------------------------

@dataclass(frozen=True)
class DeviceSettings:
    id: str = setting("PJQ-000000-0001", "device id given at enrolment",
                      matches(r"[A-Za-z0-9._-]{1,64}", "1-64 letters, digits, '.', '_' or '-'"))
    mode: str = setting("window", "\"window\" evaluator or self-service \"kiosk\"",
                        one_of("window", "kiosk"))
    hash_alg: str = setting("sha256", "record hash and HMAC: \"sha256\" or \"sm3\"",
                            one_of("sha256", "sm3"))
    secret_file: str = setting("/etc/pingjia/secret",
                               "file holding the device secret (HMAC key); a systemd "
                               "credential named pingjia-secret takes precedence")
    data_dir: str = setting("/var/lib/pingjia", "where the database lives")


@dataclass(frozen=True)
class SiteSettings:
    area_code: str = setting("000000", "administrative division code (行政区划)",
                             matches(r"\d{6}(\d{3}|\d{6})?", "6, 9 or 12 digits"))
    hall_code: str = setting("", "hall code", max_len(32))
    hall_name: str = setting("政务服务中心", "hall name shown on the idle screen", max_len(32))
    window_no: str = setting("01", "window number shown on the screen",
                             matches(r"[A-Za-z0-9-]{1,8}", "1-8 letters, digits or '-'"))
    pf: str = setting("5", "好差评 channel code: \"4\" hall tablet, \"5\" other hall terminal",
                      one_of("4", "5"))
    dept_code: str = setting("", "default accepting department, 18-char unified social credit code",
                             matches(r"([0-9A-HJ-NPQRTUWXY]{18})?", "empty or an 18-character unified social credit code"))
    dept_name: str = setting("", "default accepting department name", max_len(64))
    require_staff: bool = setting(True, "window mode: refuse invitations while no staff member "
                                        "is signed in and the invitation names none")


@dataclass(frozen=True)
class ButtonSettings:
    pin_factory: str = setting("lgpio", "gpiozero pin factory; \"mock\" simulates the buttons",
                               one_of("lgpio", "rpigpio", "pigpio", "native", "mock"))
    pins: dict = setting({5: 17, 4: 27, 3: 22, 2: 23, 1: 16},
                         "BCM GPIO of each level's button", _gpio_map)
    leds: dict = setting({5: 5, 4: 6, 3: 13, 2: 19, 1: 26},
                         "BCM GPIO of each level's LED", _gpio_map)
    order: list = setting([5, 4, 3, 2, 1], "levels of the buttons from left to right", _order)
    pull_up: bool = setting(True, "buttons connect the GPIO to ground when pressed")
    led_active_high: bool = setting(True, "an LED lights when its GPIO is high")
    bounce_ms: int = setting(20, "edges closer than this after an accepted one are bounce",
                             int_range(0, 200))
    min_press_ms: int = setting(30, "shorter contacts are noise, not presses", int_range(0, 500))
    hold_ms: int = setting(2000, "a press at least this long is a hold", int_range(500, 10000))


@dataclass(frozen=True)
class DisplaySettings:
    driver: str = setting("ssd1306", "luma device: ssd1306, sh1106, ssd1309 (128x64), ssd1322, "
                                     "ssd1325 (256x64 / 128x64 greyscale); simulated: console, "
                                     "pygame, capture, gifanim, dummy",
                          one_of(*HARDWARE_DISPLAYS, "console", "pygame", "capture", "gifanim",
                                 "dummy"))
    interface: str = setting("i2c", "\"i2c\" or \"spi\" (hardware drivers only)", one_of("i2c", "spi"))
    i2c_port: int = setting(1, "I2C bus number", int_range(0, 20))
    i2c_address: int = setting(0x3C, "I2C address of the panel", int_range(0x03, 0x77))
    spi_port: int = setting(0, "SPI bus", int_range(0, 6))
    spi_device: int = setting(0, "SPI chip select", int_range(0, 3))
    spi_speed_hz: int = setting(8_000_000, "SPI clock; one of the rates luma.core accepts",
                                one_of(*SPI_SPEEDS_HZ))
    gpio_dc: int = setting(24, "SPI data/command GPIO (BCM)", int_range(0, 53))
    gpio_reset: int = setting(25, "SPI reset GPIO (BCM)", int_range(0, 53))
    width: int = setting(128, "panel width in pixels", one_of(128, 256))
    height: int = setting(64, "panel height in pixels", one_of(64,))
    rotate: int = setting(0, "0, 1, 2 or 3 quarter turns", int_range(0, 3))
    contrast: int = setting(255, "panel contrast 0-255", int_range(0, 255))
    keep_frame_on_exit: bool = setting(True, "leave the out-of-service frame on the panel when "
                                             "the service stops (false: switch the panel off)")
    output_dir: str = setting("", "capture and gifanim drivers: where frames are written")
    fonts: list = setting([], "font files to try before the built-in search (BDF/PCF/OTF)")
    large_text: bool = setting(False, "easier reading: the prompt, the level names and the "
                                      "thanks in 24-px characters, the rest paged")


@dataclass(frozen=True)
class ApiSettings:
    bind: str = setting("0.0.0.0", "address the local API listens on: an IP address "
                                   "(0.0.0.0 every interface, 127.0.0.1 this device only, "
                                   ":: for IPv6), not a host name", ip_literal)
    port: int = setting(8410, "local API port", int_range(1, 65535))
    token: str = setting("", "bearer token of the local API (or token_file)", max_len(256))
    token_file: str = setting("", "file holding the bearer token")
    max_body_bytes: int = setting(65536, "largest request body accepted", int_range(1024, 1 << 20))
    allow_origins: list = setting([], "origins of browser-based business systems allowed to call "
                                      "the API (CORS), e.g. [\"https://ywxt.example.gov.cn\"]; "
                                      "empty: no browser page may", _origins)
    max_streams: int = setting(8, "event streams and long polls (?wait=) open at once; beyond "
                                  "this a new one gets 503", int_range(1, 16))
    tls_cert: str = setting("", "PEM certificate (chain) file: with tls_key the API speaks "
                                "HTTPS only")
    tls_key: str = setting("", "PEM private key file of tls_cert")


@dataclass(frozen=True)
class TimeoutSettings:
    invite_s: int = setting(60, "an invitation nobody rates becomes unrated after this",
                            int_range(10, 600))
    tags_s: int = setting(30, "tag choice with no key press ends after this", int_range(5, 300))
    thanks_s: int = setting(4, "how long the thank-you screen stays", int_range(1, 30))
    hint_s: int = setting(3, "how long a hint stays", int_range(1, 30))
    page_s: int = setting(3, "long texts turn a page after this", int_range(1, 30))
    fault_s: int = setting(5, "how long the fault screen stays", int_range(1, 60))
    info_s: int = setting(15, "how long the device information screen (a button held while "
                              "idle) stays", int_range(3, 120))
    kiosk_list_s: int = setting(15, "kiosk: a card holder's list of businesses ends after this "
                                    "long without a key press (the card is not needed on the "
                                    "reader meanwhile)", int_range(5, 120))


@dataclass(frozen=True)
class LevelSettings:
    labels: dict = setting(dict(NAMES), "text of each level (the five levels themselves are fixed)",
                           _labels)


@dataclass(frozen=True)
class TagSettings:
    file: str = setting("", "a tag list replacing the built-in version-2 list (same layout as "
                            "config/tags_v2.toml); the central system's list replaces both")


@dataclass(frozen=True)
class TextSettings:
    welcome: str = setting("欢迎您，请办理业务", "idle screen welcome", max_len(40))
    rate_prompt: str = setting("请您对本次服务评价", "invitation prompt", max_len(40))
    thanks: str = setting("感谢您的评价", "thank-you text", max_len(40))
    paused: str = setting("暂停服务", "paused window text (the pause call may give its own)",
                          max_len(40))
    idle_hint: str = setting("请办理业务后再评价", "shown when a button is pressed with "
                                                 "nothing to rate", max_len(40))
    title: str = setting("好差评", "title on the rating screens", max_len(20))


@dataclass(frozen=True)
class SoundSettings:
    driver: str = setting("none", "\"none\", \"clips\" (spoken prompts, WAV through ALSA) "
                                  "or \"buzzer\" on a GPIO", one_of("none", "clips", "buzzer"))
    pin: int = setting(18, "buzzer GPIO (BCM)", int_range(0, 53))
    device: str = setting("default", "clips: ALSA playback device (`aplay -L` lists them), "
                                     "e.g. \"default\", \"plughw:CARD=Headphones\"",
                          matches(r"[A-Za-z0-9_:=,.-]{1,80}", "an ALSA device name"))
    volume: int = setting(80, "clips: loudness in percent of the recording", int_range(0, 100))
    clips_dir: str = setting("", "clips: the hall's own recordings (PROMPT.wav, e.g. "
                                 "invite.wav); a prompt without one plays the built-in clip")


@dataclass(frozen=True)
class QrSettings:
    url_template: str = setting("", "URL of the platform's rating page when an invitation's "
                                    "item has no rate_url, record fields in braces, e.g. "
                                    "\"https://hcp.example.gov.cn/r/{project_no}\"; empty: "
                                    "none", qr.template_problem)
    show_s: int = setting(30, "after an unrated outcome the idle screen shows the QR code "
                              "this long (or until the next invitation)", int_range(3, 600))


@dataclass(frozen=True)
class CentralSettings:
    url: str = setting("", "base URL of the central 好差评 gateway (https://...); empty: no sync",
                       matches(r"(https?://\S+)?", "empty or an http(s) URL"))
    profile: str = setting("reference", "field layout of the central system", one_of("reference", "zhejiang"))
    verify_tls: bool = setting(True, "check the server certificate")
    ca_bundle: str = setting("", "PEM file of a private CA to trust")
    client_cert: str = setting("", "PEM client certificate, if the gateway asks for one")
    client_key: str = setting("", "PEM key of the client certificate")
    timeout_s: int = setting(10, "timeout of each request", int_range(1, 120))
    batch_size: int = setting(500, "records per upload", int_range(1, 500))
    scan_interval_s: int = setting(30, "fallback scan of the outbox when no wake-up came",
                                   int_range(1, 3600))
    heartbeat_s: int = setting(60, "heartbeat period", int_range(10, 3600))
    config_pull_s: int = setting(300, "how often the central config is checked", int_range(30, 86400))
    metrics_file: str = setting("", "node_exporter textfile to write metrics to (empty: none)")


@dataclass(frozen=True)
class ReaderSettings:
    driver: str = setting("serial", "kiosk mode: \"serial\" reader on `port`, \"simulated\" "
                                    "reader on a pseudo-terminal, or \"none\" (kiosk-app "
                                    "invitations only)", one_of("serial", "simulated", "none"))
    port: str = setting("/dev/pingjia-reader", "serial port of the ID-card reader: the udev "
                                               "name the installer makes, or a "
                                               "/dev/serial/by-id/ name")
    baud: int = setting(0, "0 probes 115200, 57600, 38400, 19200 and 9600", one_of(0, 9600, 19200, 38400, 57600, 115200))
    poll_ms: int = setting(400, "how often the reader looks for a card", int_range(300, 5000))
    lookup_timeout_s: int = setting(5, "kiosk: how long the lookup of a card holder's businesses may take",
                                    int_range(1, 30))
    card_types: list = setting(["resident", "hk_mo_tw", "foreign_2017", "foreign_2023"],
                               "card types that may look up businesses: resident (居民身份证), "
                               "hk_mo_tw (港澳台居民居住证), foreign_2017 and foreign_2023 "
                               "(外国人永久居留身份证)", _card_types)


@dataclass(frozen=True)
class Settings:
    device: DeviceSettings = field(default_factory=DeviceSettings)
    site: SiteSettings = field(default_factory=SiteSettings)
    buttons: ButtonSettings = field(default_factory=ButtonSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    levels: LevelSettings = field(default_factory=LevelSettings)
    tags: TagSettings = field(default_factory=TagSettings)
    texts: TextSettings = field(default_factory=TextSettings)
    sound: SoundSettings = field(default_factory=SoundSettings)
    qr: QrSettings = field(default_factory=QrSettings)
    central: CentralSettings = field(default_factory=CentralSettings)
    reader: ReaderSettings = field(default_factory=ReaderSettings)
    source: str = field(default="(built-in defaults)", compare=False)

    def with_values(self, values: Mapping[str, Mapping[str, Any]], source: str | None = None) -> "Settings":
        """A copy with `{"section": {"key": value}}` applied and checked."""
        data = to_dict(self)
        for section, items in values.items():
            data.setdefault(section, {}).update(items)
        return from_dict(data, source or self.source)


# section name → its dataclass, in the order of the file: what a [section] may hold
SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Settings)
            if f.name != "source"}


def defaults() -> Settings:
    return Settings()


def load(path: str | Path) -> Settings:
    """Read and check a settings file; raise ConfigError naming file, line and key."""
    path = Path(path)
    try:
        text = tomlfile.read_text(path)
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "", "file not found; copy config/pingjia.toml "
                                                          "there or pass --config")]) from None
    return loads(text, str(path))


def loads(text: str, source: str = "<string>") -> Settings:
    if text.startswith(tomlfile.BOM):
        text = text[1:]
    data = tomlfile.parse(text, source)
    try:
        return from_dict(data, source, text)
    except RecursionError:  # a value nested deeper than any setting takes
        raise tomlfile.too_deep(text, source) from None


def from_dict(data: Mapping[str, Any], source: str = "<settings>", text: str | None = None) -> Settings:
    problems: list[Problem] = []

    def report(key, message):
        problems.append(Problem(source, locate_key(text, key) if text else None, key, message))

    sections = {}
    for name, raw in data.items():
        cls = SECTIONS.get(name)
        if cls is None:
            report(name, "unknown section; known: " + ", ".join(sorted(SECTIONS)))
            continue
        if not isinstance(raw, Mapping):
            report(name, "must be a table ([" + name + "])")
            continue
        sections[name] = build_section(cls, name, raw, report)
    if problems:
        raise ConfigError(problems)
    result = Settings(**sections, source=source)
    for key, message in _pin_conflicts(result):
        report(key, message)
    for key, message in _qr_fit(result):
        report(key, message)
    if problems:
        raise ConfigError(problems)
    return result


def _pin_conflicts(settings: "Settings"):
    """Two parts wired to one GPIO line cannot both work; say which keys collide."""
    owners: dict[int, str] = {}
    d = settings.display
    if d.driver in HARDWARE_DISPLAYS:
        for pin in BUS_PINS[d.interface]:
            owners[pin] = f"display.interface ({d.interface} bus)"
    uses = [(f"buttons.pins.{lvl}", pin) for lvl, pin in sorted(settings.buttons.pins.items())]
    uses += [(f"buttons.leds.{lvl}", pin) for lvl, pin in sorted(settings.buttons.leds.items())]
    if d.driver in HARDWARE_DISPLAYS and d.interface == "spi":
        uses += [("display.gpio_dc", d.gpio_dc), ("display.gpio_reset", d.gpio_reset)]
    if settings.sound.driver == "buzzer":
        uses.append(("sound.pin", settings.sound.pin))
    for key, pin in uses:
        if pin in owners:
            yield key, f"GPIO {pin} is already used by {owners[pin]}"
        else:
            owners[pin] = key


def _qr_fit(settings: "Settings"):
    """A template whose URL for a usual business cannot be drawn on this panel."""
    template = settings.qr.url_template
    if not template:
        return
    url = qr.fill(template, qr.TEMPLATE_FIELDS)
    panel = (settings.display.width, settings.display.height)
    if not qr.fits(url, panel):
        yield ("qr.url_template", f"its URLs (e.g. {len(url)} characters: {shorten(url)}) are "
               f"too long for a QR code on the {panel[0]}x{panel[1]} panel; shorten the template")


def to_dict(settings: Settings) -> dict:
    out = {}
    for name in SECTIONS:
        out[name] = copy_value(dataclasses.asdict(getattr(settings, name)))
    return out

