"""The font finder: real CJK bitmap fonts found at run time, or a clear error."""
import os

import pytest

from drivers import fonts
from drivers.fonts import FontNotFound, find_fonts, has_cjk

MISC = "/usr/share/fonts/X11/misc"
WQY_9 = os.path.join(MISC, "wenquanyi_9pt.pcf")
WQY_10 = os.path.join(MISC, "wenquanyi_10pt.pcf")
WQY_12 = os.path.join(MISC, "wenquanyi_12pt.pcf")
UNIFONT_DIR = "/usr/share/fonts/opentype/unifont"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

needs_wqy = pytest.mark.skipif(not (os.path.exists(WQY_9) and os.path.exists(WQY_12)),
                               reason="xfonts-wqy is not installed")


@needs_wqy
def test_finds_the_installed_wenquanyi_fonts():
    found = find_fonts()
    assert found.small_path == WQY_9 and found.small_size == 12
    assert found.large_path == WQY_12 and found.large_size == 16
    assert has_cjk(found.small) and has_cjk(found.large)
    assert found.small.getbbox("满意")[2] == 24   # 12 px a character
    assert found.large.getbbox("满意")[2] == 32


@needs_wqy
def test_fonts_are_loaded_once_per_path_list():
    assert find_fonts() is find_fonts()
    assert find_fonts((WQY_10,)) is find_fonts([WQY_10])
    assert find_fonts((WQY_10,)) is not find_fonts()


@needs_wqy
def test_bogus_extra_paths_are_skipped(tmp_path):
    junk = tmp_path / "junk.pcf"
    junk.write_bytes(b"not a font at all")
    found = find_fonts((str(tmp_path / "missing.pcf"), str(junk)))
    assert found.small_path == WQY_9 and found.large_path == WQY_12


@needs_wqy
def test_extra_paths_come_first_in_the_role_they_suit():
    found = find_fonts((WQY_10,))
    assert found.small_path == WQY_10 and found.small_size == 13
    assert found.large_path == WQY_12   # 10pt has no large size: the known one serves


@pytest.mark.skipif(not os.path.exists(DEJAVU), reason="DejaVu is not installed")
def test_a_font_without_chinese_does_not_count(tmp_path):
    with pytest.raises(FontNotFound):
        find_fonts((DEJAVU,), search_dirs=[str(tmp_path)], use_fc_list=False)


@pytest.mark.skipif(not os.path.exists(os.path.join(UNIFONT_DIR, "unifont.otf")),
                    reason="fonts-unifont is not installed")
def test_unifont_alone_serves_both_roles_at_its_own_size():
    found = find_fonts(search_dirs=[UNIFONT_DIR], use_fc_list=False)
    assert found.small_path == found.large_path == os.path.join(UNIFONT_DIR, "unifont.otf")
    assert found.small_size == found.large_size == 16


def test_nothing_found_names_the_packages_to_install(tmp_path):
    with pytest.raises(FontNotFound) as err:
        find_fonts((str(tmp_path / "none.pcf"),), search_dirs=[str(tmp_path)],
                   use_fc_list=False)
    message = str(err.value)
    assert "sudo apt install fonts-unifont xfonts-wqy" in message
    assert "[display] fonts" in message


def test_a_failed_search_is_not_cached(tmp_path, monkeypatch):
    calls = []
    real = fonts._search

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(fonts, "_search", counting)
    for _ in range(2):
        with pytest.raises(FontNotFound):
            find_fonts(search_dirs=[str(tmp_path)], use_fc_list=False)
    assert len(calls) == 2
