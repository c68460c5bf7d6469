"""The central system's config for this device: checked, stored, applied without a restart.

The agent pulls `GET /v1/devices/{id}/config` and stores the last good answer in the
store's `central_config` table (`validate` first: a bad config is refused whole and the
last good one stays). The terminal checks the stored etag every few seconds and, when it
changed, posts `flow.ConfigChanged(apply(base, central))`, where `base` is the FlowConfig
of the local settings: the central values always replace the local ones, never pile up.

The config is `{"tags": {"version", "levels": {"1": [{"code", "text"}], ...}},
"texts": {<keys of the [texts] settings>}, "invite_timeout_s", "tags_timeout_s",
"thanks_timeout_s"}` (the contract's names; the [timeouts] names `invite_s`, `tags_s`,
`thanks_s` are taken too); every key is optional, unknown keys are ignored (a newer
central system may send more). Values are checked like the settings file: same keys,
same length limits, same ranges.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Mapping, Optional

from config import levels
from config import settings as schema
from config import tags as tag_lists
from config.errors import ConfigError, Problem

log = logging.getLogger("pingjia.terminal")

SOURCE = "central config"
# [timeouts] setting → (FlowConfig field, the central API's name for it)
TIMEOUTS = {"invite_s": ("invite_ms", "invite_timeout_s"), "tags_s": ("tags_ms", "tags_timeout_s"),
            "thanks_s": ("thanks_ms", "thanks_timeout_s")}
LEVEL_KEYS = tuple(str(level) for level in sorted(levels.LEVELS))


def validate(body: Any) -> dict:
    """The known parts of a central config, checked like the settings file; ConfigError if
    anything is wrong (the whole config is then refused)."""
    if not isinstance(body, Mapping):
        raise ConfigError([Problem(SOURCE, None, "", "must be a JSON object")])
    out: dict = {}
    problems = [Problem(SOURCE, None, key, "must be an object") for key in ("tags", "texts")
                if key in body and not isinstance(body[key], Mapping)]
    if problems:
        raise ConfigError(problems)
    if "tags" in body:
        try:
            tag_lists.parse(body["tags"], SOURCE)
        except ConfigError as exc:  # named as the central config names them: tags.levels...
            problems += [dataclasses.replace(p, key="tags." + p.key if p.key else "tags")
                         for p in exc.problems]
        else:
            problems += _national_levels(body["tags"]["levels"])
        out["tags"] = body["tags"]
    local = {}
    if "texts" in body:
        local["texts"] = body["texts"]
    timeouts, clashes = _timeouts(body)
    problems += clashes
    if timeouts:
        local["timeouts"] = timeouts
    try:
        schema.defaults().with_values(local, SOURCE)  # same checks and limits as the file
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    if "texts" in body:
        out["texts"] = dict(body["texts"])
    out.update(timeouts)
    return out


def _timeouts(body: Mapping) -> tuple[dict, list[Problem]]:
    """Timeouts under their settings names; a value given under both names must agree."""
    out, problems = {}, []
    for setting, (_, api_name) in TIMEOUTS.items():
        given = {k: body[k] for k in (api_name, setting) if k in body}
        if len(set(map(repr, given.values()))) > 1:
            problems.append(Problem(SOURCE, None, api_name, f"differs from {setting}"))
        if given:
            out[setting] = next(iter(given.values()))
    return out, problems


def _national_levels(levels: Mapping) -> list[Problem]:
    """A central list covers all five levels, and each code starts with its level digit
    (the national scheme: 510 is a level-5 tag, 207 a level-2 tag)."""
    problems = []
    for key in LEVEL_KEYS:
        if key not in levels and int(key) not in levels:
            problems.append(Problem(SOURCE, None, f"tags.levels.{key}", "missing"))
    for key, items in levels.items():
        for i, item in enumerate(items):
            if not str(item["code"]).startswith(str(key)):
                problems.append(Problem(SOURCE, None, f"tags.levels.{key}[{i}].code",
                                        f"{item['code']} does not start with the level digit {key}"))
    return problems


def apply(config, central: Mapping):
    """`config` (a FlowConfig) with the central values in place of the local ones."""
    changes: dict = {}
    if "tags" in central:
        changes["tags"] = tag_lists.parse(central["tags"], SOURCE)
    if "texts" in central:
        changes["texts"] = {**config.texts, **central["texts"]}
    for setting, value in _timeouts(central)[0].items():
        changes[TIMEOUTS[setting][0]] = int(value) * 1000
    return dataclasses.replace(config, **changes)


class Watcher:
    """Follows the stored central config for the terminal.

    `read_etag()` is cheap (one indexed row) and is called every few seconds;
    `read_config()` returns `(etag, body)` or None and is called only when the etag moved.
    """

    def __init__(self, base, read_etag: Callable[[], Optional[str]],
                 read_config: Callable[[], Optional[tuple]]):
        self.base = base
        self._read_etag = read_etag
        self._read_config = read_config
        self.etag: Optional[str] = None
        self.config = base

    def poll(self):
        """The new FlowConfig when the stored central config changed, else None."""
        etag = self._read_etag()
        if etag == self.etag:
            return None
        self.etag = etag  # also on failure: one log line per change, not one per poll
        stored = self._read_config()
        try:
            config = self.base if stored is None else apply(self.base, validate(stored[1]))
        except (ConfigError, ValueError, TypeError, KeyError) as exc:
            log.error("stored central config %s not applied: %s", etag, exc)
            return None
        self.config = config
        log.warning("central config %s applied", etag)
        return config
