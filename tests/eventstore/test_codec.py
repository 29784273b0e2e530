from __future__ import annotations

import contextlib
import enum
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import codec
from eventstore.errors import CodecError, CorruptEventError


class Colour(enum.StrEnum):
    RED = "red"


class Plain(enum.Enum):
    A = 1


def test_datetimes_become_aware_utc() -> None:
    local = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    back = codec.decode(codec.encode({"t": local}))["t"]
    assert back == local
    assert back.tzinfo == UTC
    assert back.hour == 10


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(CodecError, match="naive datetime"):
        codec.encode({"t": datetime(2026, 1, 1)})


def test_subclasses_are_stored_as_their_base_type() -> None:
    value = {"c": Colour.RED, "o": OrderedDict(a=1), "b": bytearray(b"x")}
    assert codec.decode(codec.encode(value)) == {"c": "red", "o": {"a": 1}, "b": b"x"}


@pytest.mark.parametrize("value", [{1, 2}, object(), Plain.A, complex(1, 2)])
def test_unknown_types_are_refused_naming_the_type(value: object) -> None:
    with pytest.raises(CodecError, match=type(value).__name__):
        codec.encode({"v": value})


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_like)
def test_round_trip(value: object) -> None:
    assert codec.decode(codec.encode(value)) == value


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_the_stores_error(data: bytes) -> None:
    with contextlib.suppress(CorruptEventError):
        codec.decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never-used byte
        b"\x92\x01",  # truncated array
        b"\x01\x02",  # extra data
        msgpack.packb(msgpack.ExtType(42, b"x")),  # foreign extension
        msgpack.packb(msgpack.ExtType(1, b"\x01")),  # tuple ext not holding an array
        b"\x91" * 100_000 + b"\x01",  # nesting bomb
        b"\x81\x91\x01\x01",  # unhashable map key
        b"\xa2\xff\xfe",  # invalid utf-8 str
        b"\xdd\xff\xff\xff\xff",  # claims 4G array elements
    ],
)
def test_corrupt_payloads(data: bytes) -> None:
    with pytest.raises(CorruptEventError):
        codec.decode(data)


def test_size_cap_applies_before_unpacking() -> None:
    with pytest.raises(CorruptEventError, match="exceeds"):
        codec.decode(codec.encode("x" * 1000), max_bytes=100)


def test_decode_mapping_requires_a_map() -> None:
    with pytest.raises(CorruptEventError, match="map"):
        codec.decode_mapping(codec.encode([1]))
