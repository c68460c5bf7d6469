"""Card text decoding, card types, the GB 11643 check character and masking."""
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.idcard import cards as C
from drivers.idcard.simulated import SAMPLE_CARDS, foreign_2017_card, foreign_2023_card, hk_mo_tw_card, resident_card


def utf16(text: str, chars: int) -> bytes:
    return text.ljust(chars).encode("utf-16-le")


def resident_text() -> bytes:
    """The §7.3 holder's text block, written out field by field as in §5.2."""
    return (utf16("张三", 15) + utf16("1", 1) + utf16("01", 2) + utf16("19491231", 8)
            + utf16("北京市朝阳区测试路1号", 35) + utf16("11010519491231002X", 18)
            + utf16("北京市公安局朝阳分局", 15) + utf16("20200101", 8) + utf16("20400101", 8)
            + utf16("", 18))


def test_resident_card_decodes():
    card = C.parse_text_block(resident_text())
    assert card.card_type == C.RESIDENT
    assert card.name == "张三"
    assert card.id_number == "11010519491231002X"
    assert (card.gender, card.nation, card.birth_date) == ("1", "01", "19491231")
    assert card.address == "北京市朝阳区测试路1号"
    assert card.issuer == "北京市公安局朝阳分局"
    assert (card.valid_from, card.valid_until) == ("20200101", "20400101")
    assert card.cert_type == "111"
    assert card.id_check_ok is True


def test_the_encoder_writes_the_same_bytes_as_the_layout():
    assert C.encode_text_block(resident_card().card) == resident_text()


def test_nul_padding_is_trimmed_like_spaces():
    text = bytearray(resident_text())
    text[4:30] = bytes(26)  # name padded with NULs instead of spaces
    text[248:250] = bytes(2)  # NUL type flag = resident
    card = C.parse_text_block(bytes(text))
    assert card.name == "张三" and card.card_type == C.RESIDENT


def test_long_term_validity():
    text = bytearray(resident_text())
    text[204:220] = utf16("长期", 8)
    assert C.parse_text_block(bytes(text)).valid_until == "长期"


def test_hk_mo_tw_card_j():
    text = C.encode_text_block(hk_mo_tw_card().card)
    assert text[248:250] == b"J\x00"
    assert text[220:238] == utf16("H12345678", 9)
    card = C.parse_text_block(text)
    assert card.card_type == C.HK_MO_TW
    assert (card.name, card.id_number) == ("陈大文", "810000199001010019")
    assert (card.pass_number, card.issue_count) == ("H12345678", "01")
    assert card.nation == ""
    assert card.id_check_ok is True


def test_foreign_2017_card_i():
    text = C.encode_text_block(foreign_2017_card().card)
    assert text[248:250] == b"I\x00"
    assert text[0:24] == "SAMPLE, JOHN".encode("utf-16-le")
    card = C.parse_text_block(text)
    assert card.card_type == C.FOREIGN_2017
    assert (card.english_name, card.name) == ("SAMPLE, JOHN", "约翰")
    assert (card.id_number, card.nationality) == ("USA110079010101", "USA")
    assert (card.birth_date, card.card_version, card.authority_code) == ("19790101", "01", "1100")
    assert card.id_check_ok is None  # 15-character number, no check character
    assert card.cert_type == "553"


def test_foreign_2017_without_chinese_name_shows_the_english_one_masked():
    card = C.parse_text_block(C.encode_text_block(foreign_2017_card(name="").card))
    assert card.display_name == "SAMPLE, JOHN"
    assert card.masked()["name"] == "S**********N"


def test_foreign_2023_card_y_keeps_the_space_at_the_name_split():
    text = C.encode_text_block(foreign_2023_card().card)
    assert text[248:250] == b"Y\x00"
    card = C.parse_text_block(text)
    assert card.card_type == C.FOREIGN_2023
    assert card.english_name == "SAMPLE, MARY ELIZABETH ANNE-MARIES CATHERINE"
    assert (card.name, card.id_number, card.nationality) == ("玛丽", "932682198501010017", "GBR")
    assert card.renewal_count == "00"
    assert card.id_check_ok is True


@pytest.mark.parametrize("card_type", sorted(SAMPLE_CARDS))
def test_every_sample_card_round_trips_through_a_read_payload(card_type):
    sim_card = SAMPLE_CARDS[card_type]()
    text = C.encode_text_block(sim_card.card)
    assert len(text) == C.TEXT_LEN
    for fingerprints in (None, b"", bytes(512), bytes(1024)):
        payload = C.build_read_payload(text, bytes(range(256)) * 4, fingerprints)
        assert C.decode_read_payload(payload, fingerprints is not None) == sim_card.card


def test_unknown_type_flag_is_a_format_error():
    text = bytearray(resident_text())
    text[248:250] = b"Q\x00"
    with pytest.raises(C.CardFormatError, match="type flag"):
        C.parse_text_block(bytes(text))


def test_length_words_are_honoured():
    text = resident_text()
    # A reader that sends a 512-byte photo: offsets follow the length words.
    payload = b"\x01\x00\x02\x00" + text + bytes(512)
    assert C.decode_read_payload(payload).name == "张三"
    fp_payload = b"\x01\x00\x04\x00\x02\x00" + text + bytes(1024) + bytes(512)
    block, fp_len = C.split_read_payload(fp_payload, with_fingerprint=True)
    assert block == text and fp_len == 512


@pytest.mark.parametrize("payload", [
    b"",
    b"\x01\x00",
    b"\x01\x00\x04\x00" + bytes(255),  # shorter than the length words say
    b"\x01\x00\x04\x00" + bytes(1281),  # longer
    b"\x00\x80\x00\x00" + bytes(128),  # a text block shorter than 256 bytes
])
def test_malformed_payloads_are_format_errors(payload):
    with pytest.raises(C.CardFormatError):
        C.decode_read_payload(payload)


@given(st.binary(max_size=1400), st.booleans())
def test_decoding_arbitrary_payloads_raises_only_format_errors(payload, fp):
    try:
        card = C.decode_read_payload(payload, fp)
    except C.CardFormatError:
        return
    assert card.card_type in C.CERT_TYPES


# --- check character ------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    "11010519491231002X",  # GB 11643 examples
    "440524188001010014",
    "932682198501010017",  # 2023 foreigner card samples (§6)
    "911124198108030024",
])
def test_standard_examples_are_valid(number):
    assert C.is_valid_id_number(number)
    assert C.id_check_char(number[:17]) == number[17]


@pytest.mark.parametrize("number", [
    "110105194912310021",  # wrong check character
    "440524188001010015",
    "11010519491231002",  # too short
    "1101051949123100２X",  # full-width digit
    "A1010519491231002X",
    "",
])
def test_invalid_numbers(number):
    assert not C.is_valid_id_number(number)


def test_lowercase_x_is_accepted():
    assert C.is_valid_id_number("11010519491231002x")


@given(st.text(alphabet="0123456789", min_size=17, max_size=17), st.sampled_from("0123456789X"))
def test_exactly_one_check_character_fits(first17, last):
    assert C.is_valid_id_number(first17 + last) == (C.id_check_char(first17) == last)


def test_check_char_rejects_bad_input():
    with pytest.raises(ValueError):
        C.id_check_char("123")


# --- masking ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, masked", [
    ("张三", "张*"), ("张小三", "张*三"), ("欧阳小明", "欧**明"), ("王", "*"), ("", ""),
])
def test_mask_name(name, masked):
    assert C.mask_name(name) == masked


@pytest.mark.parametrize("number, masked", [
    ("11010519491231002X", "1101**********002X"),
    ("USA110079010101", "USA1*******0101"),
    ("12345678", "********"),
])
def test_mask_id(number, masked):
    assert C.mask_id(number) == masked


def test_card_repr_and_str_show_masked_data_only(caplog):
    card = resident_card().card
    shown = [repr(card), str(card), f"{card}", repr([card]), repr({"card": card})]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("card %s %r", card, card)
    shown.append(caplog.text)
    for text in shown:
        assert "张三" not in text
        assert "11010519491231002X" not in text
        assert "张*" in text and "1101**********002X" in text
        assert "北京" not in text


def test_masked_dict():
    assert resident_card().card.masked() == {
        "card_type": "resident", "name": "张*", "id": "1101**********002X"}
