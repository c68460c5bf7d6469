"""Settings: the documented default file, and errors that name file, line and key."""
from pathlib import Path

import pytest

from config import document, settings as s
from config import tags
from config.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = ROOT / "config" / "pingjia.toml"


def problems(text, source="/etc/pingjia/pingjia.toml"):
    with pytest.raises(ConfigError) as err:
        s.loads(text, source)
    return [str(p) for p in err.value.problems]


def test_the_shipped_default_file_is_the_schema():
    assert DEFAULT_FILE.read_text(encoding="utf-8") == document.render(), \
        "regenerate with: python -m config.document > config/pingjia.toml"
    assert s.load(DEFAULT_FILE) == s.defaults()


def test_every_key_is_documented():
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    for section, values in s.to_dict(s.defaults()).items():
        assert f"[{section}]" in text
        for key in values:
            assert f"\n{key} = " in text


def test_partial_file_takes_defaults():
    got = s.loads('[site]\nwindow_no = "A12"\n[buttons]\npins = {5 = 5, 4 = 6, 3 = 13, 2 = 19, 1 = 26}\n'
                  'leds = {5 = 17, 4 = 27, 3 = 22, 2 = 23, 1 = 24}\n')
    assert got.site.window_no == "A12"
    assert got.buttons.pins == {5: 5, 4: 6, 3: 13, 2: 19, 1: 26}
    assert got.timeouts.invite_s == 60


def test_errors_name_file_line_and_key():
    text = ('[device]\nid = "PJQ-1"\nmode = "windw"\n\n[buttons]\n'
            'pins = {5 = 17, 4 = 27}\nbounce_ms = "x"\n[timeouts]\ninvite_s = 5\n')
    got = problems(text)
    assert got == [
        "/etc/pingjia/pingjia.toml:3: device.mode: must be one of 'window', 'kiosk' (got 'windw')",
        "/etc/pingjia/pingjia.toml:6: buttons.pins: needs exactly one entry for each level 1 to 5 "
        "(got {5: 17, 4: 27})",
        "/etc/pingjia/pingjia.toml:7: buttons.bounce_ms: must be an integer (got 'x')",
        "/etc/pingjia/pingjia.toml:9: timeouts.invite_s: must be between 10 and 600 (got 5)",
    ]


def test_unknown_keys_and_sections_are_errors():
    got = problems('[display]\nwidht = 128\n[dispaly]\nwidth = 128\n')
    assert got[0].startswith("/etc/pingjia/pingjia.toml:2: display.widht: unknown key")
    assert got[1].startswith("/etc/pingjia/pingjia.toml:3: dispaly: unknown section")


def test_toml_syntax_error_has_a_line():
    got = problems('[site]\nwindow_no = "01\n')
    assert got[0].startswith("/etc/pingjia/pingjia.toml:2: site.window_no: not valid TOML")


def test_types_are_strict():
    assert "must be true or false" in problems("[site]\nrequire_staff = 1\n")[0]
    assert "must be a string" in problems("[site]\nwindow_no = 1\n")[0]
    assert "must be an integer" in problems("[api]\nport = true\n")[0]
    assert "every item must be an integer" in problems('[buttons]\norder = [5, 4, "3", 2, 1]\n')[0]


def test_pins_must_differ_and_cover_the_levels():
    assert "its own GPIO" in problems("[buttons]\npins = {5 = 1, 4 = 1, 3 = 2, 2 = 3, 1 = 4}\n")[0]
    assert "must list the levels" in problems("[buttons]\norder = [5, 4, 3, 2, 2]\n")[0]


def test_dotted_and_quoted_keys_are_located():
    got = problems('[site]\n"window_no" = "#"\n')
    assert got[0].startswith("/etc/pingjia/pingjia.toml:2: site.window_no")
    got = problems('site.window_no = "#"\n')
    assert got[0].startswith("/etc/pingjia/pingjia.toml:1: site.window_no")


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="file not found; copy config/pingjia.toml"):
        s.load(tmp_path / "nope.toml")


def test_with_values_checks_too():
    base = s.defaults()
    assert base.with_values({"site": {"window_no": "B2"}}).site.window_no == "B2"
    with pytest.raises(ConfigError, match="site.pf"):
        base.with_values({"site": {"pf": "9"}})


def test_builtin_tags_are_version_2_with_eight_per_level():
    lst = tags.builtin()
    assert lst.version == "2"
    assert {k: len(v) for k, v in lst.levels.items()} == {5: 8, 4: 8, 3: 8, 2: 8, 1: 8}
    assert all(t.code[0] == str(level) for level, ts in lst.levels.items() for t in ts)
    staff = {t.code for ts in lst.levels.values() for t in ts if t.subject == "staff"}
    assert staff == {"517", "413", "314", "213", "214", "115"}


def test_bad_tag_lists_are_refused_whole(tmp_path):
    with pytest.raises(ConfigError) as err:
        tags.parse({"version": "3", "levels": {"1": [], "2": [{"code": "2x 1", "text": ""}],
                                               "7": []}}, "central")
    text = str(err.value)
    assert "levels.7: levels are 1 to 5" in text
    assert "levels.2[0].code" in text and "levels.2[0].text" in text
    assert "levels.1: a bad rating needs at least one tag" in text


def test_tag_file_setting(tmp_path):
    f = tmp_path / "tags.toml"
    f.write_text('version = "9"\n[[levels.1]]\ncode = "X1"\ntext = "测试"\n'
                 '[[levels.2]]\ncode = "X2"\ntext = "测试二"\nsubject = "staff"\n', encoding="utf-8")
    got = tags.for_settings(s.defaults().with_values({"tags": {"file": str(f)}}))
    assert got.version == "9" and got.for_level(2)[0].subject == "staff"
    assert got.for_level(5) == ()


def test_two_parts_on_one_gpio_are_refused_with_both_keys():
    text = """
[buttons]
pins = {5 = 17, 4 = 27, 3 = 22, 2 = 23, 1 = 24}
[display]
interface = "spi"
driver = "ssd1322"
width = 256
"""
    with pytest.raises(ConfigError) as err:
        s.loads(text, "pingjia.toml")
    message = str(err.value)
    assert "display.gpio_dc" in message and "GPIO 24" in message and "buttons.pins.1" in message


def test_a_button_on_the_i2c_bus_is_refused():
    with pytest.raises(ConfigError, match="buttons.pins.5.*GPIO 2 .*i2c bus"):
        s.loads("[buttons]\npins = {5 = 2, 4 = 27, 3 = 22, 2 = 23, 1 = 16}\n", "f.toml")


def test_spi_speed_must_be_one_luma_accepts():
    with pytest.raises(ConfigError, match="spi_speed_hz"):
        s.loads("[display]\nspi_speed_hz = 3000000\n", "f.toml")
