"""What the flow works on: its configuration, its states, the events it takes and the
effects it asks for. All immutable, so `step` is a pure function and states compare."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from config.levels import NAMES
from config.settings import TextSettings
from config.tags import Tag, TagList


# --- the people and businesses ------------------------------------------------

@dataclass(frozen=True)
class Staff:
    id: str
    name: str


@dataclass(frozen=True)
class Business:
    project_no: str
    task_name: str
    task_code: str = ""
    task_handle_item: str = ""
    dept_code: str = ""
    dept_name: str = ""
    rate_url: str = ""   # the platform's rating page for this business, if it has one


@dataclass(frozen=True)
class Visit:
    """One invitation: the businesses a single rating will apply to."""
    visit_id: str
    items: tuple[Business, ...]
    staff: Optional[Staff]
    invited_at: str
    invited_mono: int
    clock_synced: bool
    channel: str = "window"
    real_name: bool = False
    follow_ups: frozenset = frozenset()   # project_nos rated before: this is their 追加评价


@dataclass(frozen=True)
class Finished:
    """A business the kiosk's lookup found for a card holder: finished, not yet rated."""
    business: Business
    staff_name: str = ""
    finished_at: str = ""


# --- configuration ------------------------------------------------------------

TAG_ROLES = ("up", "down", "toggle", "back", "submit")
CARD_TYPES = ("resident", "hk_mo_tw", "foreign_2017", "foreign_2023")
DEFAULT_TEXTS = {name: f.default for name, f in TextSettings.__dataclass_fields__.items()}


@dataclass(frozen=True)
class FlowConfig:
    mode: str = "window"
    labels: Mapping[int, str] = field(default_factory=lambda: dict(NAMES))
    tags: Optional[TagList] = None
    texts: Mapping[str, str] = field(default_factory=dict)
    order: tuple[int, ...] = (5, 4, 3, 2, 1)
    invite_ms: int = 60_000
    tags_ms: int = 30_000
    thanks_ms: int = 4_000
    hint_ms: int = 3_000
    page_ms: int = 3_000
    fault_ms: int = 5_000
    info_ms: int = 15_000
    retry_ms: int = 5_000
    device_id: str = ""
    window_no: str = "01"
    hall_name: str = ""
    hall_code: str = ""
    area_code: str = "000000"
    pf: str = "5"
    dept_code: str = ""
    dept_name: str = ""
    require_staff: bool = True
    version: str = ""
    lookup_ms: int = 5_000            # kiosk: the central lookup's own timeout
    card_types: tuple = CARD_TYPES    # kiosk: card types that may look up businesses
    list_ms: int = 15_000             # kiosk: a card holder's business list, without a key
    panel: tuple = (128, 64)          # the QR code must fit on it (config/qr.py)
    qr_template: str = ""             # qr.url_template
    qr_ms: int = 30_000               # qr.show_s: the idle screen's QR after an unrated end
    large_text: bool = False          # display.large_text

    def text(self, key: str) -> str:
        """A screen text: the configured one, else the settings' documented default."""
        return self.texts.get(key) or DEFAULT_TEXTS.get(key, "")

    def role_of(self, button: int, roles=TAG_ROLES):
        """What a button does on a list screen: by its position, left to right."""
        return roles[self.order.index(button)]

    @classmethod
    def from_settings(cls, settings, tags: TagList, version: str = "") -> "FlowConfig":
        t = settings.timeouts
        site = settings.site
        texts = {name: getattr(settings.texts, name) for name in settings.texts.__dataclass_fields__}
        return cls(mode=settings.device.mode, labels=dict(settings.levels.labels), tags=tags,
                   texts=texts, order=tuple(settings.buttons.order),
                   invite_ms=t.invite_s * 1000, tags_ms=t.tags_s * 1000,
                   thanks_ms=t.thanks_s * 1000, hint_ms=t.hint_s * 1000,
                   page_ms=t.page_s * 1000, fault_ms=t.fault_s * 1000, info_ms=t.info_s * 1000,
                   device_id=settings.device.id, window_no=site.window_no,
                   hall_name=site.hall_name, hall_code=site.hall_code,
                   area_code=site.area_code, pf=site.pf, dept_code=site.dept_code,
                   dept_name=site.dept_name, require_staff=site.require_staff, version=version,
                   lookup_ms=settings.reader.lookup_timeout_s * 1000,
                   card_types=tuple(settings.reader.card_types), list_ms=t.kiosk_list_s * 1000,
                   panel=(settings.display.width, settings.display.height),
                   qr_template=settings.qr.url_template, qr_ms=settings.qr.show_s * 1000,
                   large_text=settings.display.large_text)


# --- screens (the mode the flow is in) ------------------------------------------

@dataclass(frozen=True)
class Idle:
    pass


@dataclass(frozen=True)
class Invited:
    visit: Visit
    deadline: int


@dataclass(frozen=True)
class Tagging:
    """A bad rating was pressed: the person picks at least one reason."""
    visit: Visit
    level: int
    rated_at: str
    rated_mono: int
    rated_synced: bool
    options: tuple[Tag, ...]
    deadline: int
    cursor: int = 0
    selected: frozenset = frozenset()
    warn: bool = False  # tried to submit with nothing selected


@dataclass(frozen=True)
class Saving:
    """Records handed to the store; the thanks screen waits for the commit. `qr`: the
    visit's rating-page URLs (terminal/flow/links.py), shown once it is stored."""
    level: Optional[int]
    qr: tuple = ()


@dataclass(frozen=True)
class Thanks:
    level: int
    deadline: int
    qr: tuple = ()   # URLs to add written comments on the platform (扫码补充意见)


@dataclass(frozen=True)
class Info:
    """Technician information, shown while idle after a button is held."""
    deadline: int


@dataclass(frozen=True)
class Testing:
    """A technician's hardware test (terminal/flow/testing.py): "display" shows the test
    patterns and then every screen, "buttons" shows which button was pressed."""
    kind: str
    ends: int                    # monotonic ms at which the test stops by itself
    deadline: int                # next Tick wanted: the next frame or the end
    frame: int = 0
    frames: int = 0
    step_ms: int = 0
    presses: tuple = ()          # ((button, "press" | "hold"), ...), newest last
    started_at: str = ""


Screen = Union[Idle, Invited, Tagging, Saving, Thanks, Info, Testing]


@dataclass(frozen=True)
class State:
    config: FlowConfig
    screen: Screen = Idle()
    staff: Optional[Staff] = None
    paused: bool = False
    pause_message: str = ""
    hint: str = ""
    hint_until: int = 0
    fault_until: int = 0
    fault: str = ""
    page: int = 0
    page_at: int = 0
    pending: tuple = ()          # drafts the store has not taken yet
    storage_error: str = ""
    retry_at: int = 0
    health: Mapping[str, object] = field(default_factory=dict)
    lookups: int = 0             # kiosk: id of the last lookup started
    last_test: Mapping[str, object] = field(default_factory=dict)  # how the last test ended
    qr: tuple = ()               # idle after an unrated end: URLs to rate later (扫码评价)
    qr_until: int = 0


# --- events -------------------------------------------------------------------

@dataclass(frozen=True)
class Invite:
    """An invitation. The shell fills in what the store knows (`stored_kind`: kind of a
    stored record of this visit; `stored_rated`: project_nos among the items already
    rated; `stored_follow_ups`: those rated twice) on the event thread, so that 一次一评
    is checked atomically with the step."""
    visit_id: str
    items: tuple[Business, ...]
    staff: Optional[Staff] = None
    request_id: Optional[int] = None
    stored_kind: Optional[str] = None
    stored_rated: frozenset = frozenset()
    follow_up: bool = False              # 追加评价: one more rating of a rated business
    stored_follow_ups: frozenset = frozenset()   # project_nos whose follow-up is stored


@dataclass(frozen=True)
class Cancel:
    request_id: Optional[int] = None


@dataclass(frozen=True)
class SignIn:
    staff: Staff
    request_id: Optional[int] = None


@dataclass(frozen=True)
class SignOut:
    request_id: Optional[int] = None


@dataclass(frozen=True)
class SetWindow:
    paused: bool
    message: str = ""
    request_id: Optional[int] = None


@dataclass(frozen=True)
class Press:
    button: int  # the level printed on the button


@dataclass(frozen=True)
class Hold:
    button: int


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class ConfigChanged:
    config: FlowConfig
    request_id: Optional[int] = None   # a technician's reload waits for the Reply


@dataclass(frozen=True)
class StartTest:
    """Start a hardware test; `frames` (display test) is how many frames it shows."""
    kind: str
    duration_ms: int
    frames: int = 0
    step_ms: int = 1_000
    request_id: Optional[int] = None


@dataclass(frozen=True)
class StopTest:
    request_id: Optional[int] = None


@dataclass(frozen=True)
class Stored:
    count: int


@dataclass(frozen=True)
class StoreFailed:
    drafts: tuple
    error: str


@dataclass(frozen=True)
class Shutdown:
    """The terminal stops (SIGTERM): the open visit ends as `interrupted` (a bad rating
    being given stands, as on a cancel), and what the store has not taken yet is tried
    once more."""


@dataclass(frozen=True)
class CardRead:
    """Kiosk: a card was read. `cert_no` travels only in this event and in StartLookup;
    the flow never keeps it in a state, and repr() leaves it out."""
    card_type: str
    cert_type: str
    masked_name: str
    cert_no: str = field(repr=False)


@dataclass(frozen=True)
class CardFailed:
    """Kiosk: a card was placed but not read, or the reader failed."""
    reason: str  # "unreadable", "unsupported", "reader_fault"
    detail: str = ""


@dataclass(frozen=True)
class LookupDone:
    """Kiosk: the answer to StartLookup `lookup_id`: businesses found, or an error
    ("network", "timeout", "refused", "server", "unavailable"). The shell fills in
    `stored_rated` (project_nos among them the store has rated) like Invite's."""
    lookup_id: int
    businesses: tuple = ()       # of Finished
    error: Optional[str] = None
    stored_rated: frozenset = frozenset()


@dataclass(frozen=True)
class Health:
    """Status the screens may show (queue depth, network); from the service."""
    values: Mapping[str, object]


# --- effects ------------------------------------------------------------------

@dataclass(frozen=True)
class Append:
    drafts: tuple


@dataclass(frozen=True)
class Open:
    """A visit opened: remember it durably, as the records it ends with if the terminal
    stops or loses power first (`interrupted`). The shell commits it together with the
    step's Append, all or nothing, before any Reply of the step goes out."""
    drafts: tuple


@dataclass(frozen=True)
class Reply:
    request_id: Optional[int]
    status: int
    body: Mapping


@dataclass(frozen=True)
class StartLookup:
    """Kiosk: ask the central system for this card holder's finished businesses."""
    lookup_id: int
    cert_type: str
    cert_no: str = field(repr=False)
    timeout_ms: int = 5_000


@dataclass(frozen=True)
class Sound:
    name: str  # a prompt of drivers/sound.py PROMPTS, or "press" (a key click, buzzer only)
