"""Settings of the citizen's side: [qr] (a template that cannot fit, or names an unknown
field, is an error naming file, line and key), [sound] and display.large_text."""
import pytest

from config import settings as s
from config.errors import ConfigError
from terminal.flow import FlowConfig
from config import tags

SOURCE = "/etc/pingjia/pingjia.toml"


def problems(text):
    with pytest.raises(ConfigError) as err:
        s.loads(text, SOURCE)
    return [str(p) for p in err.value.problems]


def test_the_contracts_example_template_is_accepted_on_both_panels():
    for width in (128, 256):
        got = s.loads(f'[display]\nwidth = {width}\n[qr]\nurl_template = '
                      '"https://hcp.example.gov.cn/r/{project_no}"\nshow_s = 20\n', SOURCE)
        cfg = FlowConfig.from_settings(got, tags.builtin())
        assert cfg.qr_template == "https://hcp.example.gov.cn/r/{project_no}"
        assert cfg.qr_ms == 20_000 and cfg.panel == (width, 64)


def test_template_errors_name_file_line_and_key():
    assert problems('[site]\nwindow_no = "01"\n\n[qr]\nurl_template = "https://x.cn/{projectno}"\n') \
        == [f"{SOURCE}:5: qr.url_template: unknown field {{projectno}}; known: "
            + ", ".join("{" + k + "}" for k in s.qr.TEMPLATE_FIELDS)
            + " (got 'https://x.cn/{projectno}')"]
    assert problems('[qr]\nurl_template = "http://x.cn/{project_no}"\n')[0].startswith(
        f"{SOURCE}:2: qr.url_template: must start with https://")
    assert "braces must enclose a field name" in problems('[qr]\nurl_template = "https://x.cn/{"\n')[0]


def test_a_template_too_long_for_the_panel_is_an_error_there_only():
    long = "https://hcp.example.gov.cn/rate/{project_no}/{task_code}"
    text = f'[qr]\nurl_template = "{long}"\n'
    [problem] = problems(text)
    assert problem.startswith(f"{SOURCE}:2: qr.url_template: its URLs") and "128x64" in problem
    assert s.loads('[display]\nwidth = 256\n' + text, SOURCE).qr.url_template == long


def test_sound_settings():
    got = s.loads('[sound]\ndriver = "clips"\ndevice = "plughw:CARD=Headphones"\nvolume = 60\n'
                  'clips_dir = "/etc/pingjia/clips"\n', SOURCE)
    assert (got.sound.driver, got.sound.device, got.sound.volume) == ("clips",
                                                                     "plughw:CARD=Headphones", 60)
    assert "must be one of 'none', 'clips', 'buzzer'" in problems('[sound]\ndriver = "speaker"\n')[0]
    assert "between 0 and 100" in problems('[sound]\nvolume = 101\n')[0]
    assert "an ALSA device name" in problems('[sound]\ndevice = "a b"\n')[0]


def test_large_text_reaches_the_flow():
    got = s.loads('[display]\nlarge_text = true\n', SOURCE)
    assert FlowConfig.from_settings(got, tags.builtin()).large_text is True


def test_large_text_is_taken_up_by_a_reload_the_panel_by_a_restart():
    from config import changes
    assert changes.restart_for("display.large_text") == ()
    assert changes.restart_for("display.width") == ("terminal",)
    assert changes.restart_for("qr.url_template") == ()
    assert changes.restart_for("sound.device") == ("terminal",)
