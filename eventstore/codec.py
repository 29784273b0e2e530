"""msgpack codec for event data, meta and anything else the store persists.

Explicit rules, so that what is read back is what was written:
- datetimes must be timezone-aware; they are stored as UTC msgpack Timestamps and read back as
  aware UTC datetimes (a naive datetime is ambiguous, so it is refused);
- bytes stay bytes (msgpack bin), str stays str;
- tuples come back as tuples (ext type 1), lists as lists;
- subclasses of str/int/float/dict/list (StrEnum, OrderedDict...) are stored as their base type;
- anything else (sets, objects, plain Enums...) is refused with CodecError naming the type.

Decoding treats the bytes as untrusted: the size is capped before unpacking, extension types other
than ours are refused, and every failure becomes CorruptEventError (never a msgpack exception).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgpack

from eventstore.errors import CodecError, CorruptEventError

_EXT_TUPLE = 1
DEFAULT_MAX_DECODE_BYTES = 64 * 1024 * 1024


def _default(value: object) -> object:
    # strict_types=True sends every non-exact builtin here, so subclasses are mapped explicitly.
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CodecError(f"cannot encode naive datetime {value.isoformat()}: give it a tzinfo")
        return msgpack.Timestamp.from_datetime(value.astimezone(UTC))
    if isinstance(value, tuple):
        return msgpack.ExtType(_EXT_TUPLE, _pack(list(value)))
    if isinstance(value, bool):  # a bool subclass cannot exist, but keep bool out of the int arm
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise CodecError(f"cannot encode value of type {type(value).__qualname__}: {value!r:.80}")


def _pack(value: object) -> bytes:
    return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]


def encode(value: object) -> bytes:
    """Encode a value for storage; raises CodecError for anything outside the rules above."""
    try:
        return _pack(value)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode value: {exc}") from exc


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_TUPLE:
        inner = _unpack(data)
        if not isinstance(inner, list):
            raise CorruptEventError("tuple extension does not hold an array")
        return tuple(inner)
    raise CorruptEventError(f"unknown msgpack extension type {code}")


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(
        data,
        raw=False,
        use_list=True,
        timestamp=3,  # aware UTC datetimes
        strict_map_key=False,
        ext_hook=_ext_hook,
    )


def decode(data: bytes, max_bytes: int = DEFAULT_MAX_DECODE_BYTES) -> Any:
    """Decode bytes written by `encode`. Corrupt, truncated or hostile input raises
    CorruptEventError; input larger than `max_bytes` is refused before unpacking."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptEventError(f"expected bytes to decode, got {type(data).__qualname__}")
    if len(data) > max_bytes:
        raise CorruptEventError(f"payload of {len(data)} bytes exceeds the {max_bytes} byte limit")
    try:
        return _unpack(bytes(data))
    except CorruptEventError:
        raise
    # msgpack raises ExtraData/FormatError/StackError (ValueError subclasses), ValueError on
    # truncation, TypeError for unhashable map keys, UnicodeDecodeError for bad str bytes.
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise CorruptEventError(f"cannot decode payload: {type(exc).__name__}: {exc}") from exc


def decode_mapping(data: bytes, max_bytes: int = DEFAULT_MAX_DECODE_BYTES) -> dict[str, Any]:
    """Decode a payload that must be a map (event data and meta). The replay hot path: one
    call into msgpack for the common case, the checks of `decode` for everything else."""
    if type(data) is bytes and len(data) <= max_bytes:
        try:
            value = msgpack.unpackb(
                data, raw=False, timestamp=3, strict_map_key=False, ext_hook=_ext_hook
            )
        except CorruptEventError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
            raise CorruptEventError(f"cannot decode payload: {type(exc).__name__}: {exc}") from exc
    else:
        value = decode(data, max_bytes)
    if type(value) is not dict:
        raise CorruptEventError(f"expected a map payload, got {type(value).__qualname__}")
    return value
