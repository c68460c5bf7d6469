"""Record ids: valid UUIDs (the contract), unique, and ordered by the time they were made,
so that the device's and the central system's unique indexes grow at one end."""
import uuid

from hypothesis import given, strategies as st

from terminal.records import uuid7

MS = st.integers(min_value=0, max_value=2**48 - 1)


@given(MS, st.binary(min_size=10, max_size=10))
def test_every_id_is_a_version_7_rfc_uuid_carrying_its_millisecond(ms, noise):
    text = uuid7(lambda: ms, lambda n: noise[:n])
    u = uuid.UUID(text)
    assert str(u) == text and len(text) == 36
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert u.int >> 80 == ms


@given(MS, MS, st.binary(min_size=10, max_size=10), st.binary(min_size=10, max_size=10))
def test_a_later_millisecond_sorts_later_whatever_the_random_bits(a, b, noise_a, noise_b):
    first, second = sorted((a, b))
    x = uuid7(lambda: first, lambda n: noise_a[:n])
    y = uuid7(lambda: second, lambda n: noise_b[:n])
    if first < second:
        assert x < y  # the text form sorts like the number: fixed-width lowercase hex


def test_ids_made_in_the_same_millisecond_differ():
    ids = {uuid7(lambda: 1_796_000_000_000) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_the_store_gives_records_time_ordered_ids(tmp_path):
    from terminal.store import Store
    from tests.agent.conftest import SECRET, drafts
    with Store(tmp_path / "p.db", device_id="PJQ-1", secret=SECRET, hash_alg="sha256",
               boot_id="b") as store:
        ids = [r["record_id"] for r in store.append(drafts(50))]
    stamps = [uuid.UUID(i).int >> 80 for i in ids]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert stamps == sorted(stamps)  # within one millisecond the order is random, and harmless
