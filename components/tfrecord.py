"""TFRecord files of `tf.train.Example`s, written without TensorFlow.

The tokenized splits are TFRecords of int64 features; writing them through TensorFlow's protos
would make every Beam worker of the regex-tokenized models import TensorFlow, and per-example
message building is the slowest part of preprocessing. The protobuf wire format and TFRecord
framing are small enough to write directly; `tf.data.TFRecordDataset` reads the result.
"""

from __future__ import annotations

import struct
from typing import List, Mapping, Tuple

import numpy as np

from components.errors import ConfigError

_VARINT_TABLE = []
for _n in range(1 << 14):
    _VARINT_TABLE.append(bytes([_n]) if _n < 0x80 else bytes([(_n & 0x7F) | 0x80, _n >> 7]))
del _n


def _varint(n: int) -> bytes:
    if n < 16384:
        return _VARINT_TABLE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _packed_varints(values: np.ndarray) -> Tuple[bytes, np.ndarray]:
    """Protobuf varints of every row of an int array [n, k], concatenated, and row byte offsets.

    Vectorized because this is the hot loop of writing examples (n*seq_len values per batch).
    Byte 0 of every value is scattered at once, later bytes only for the few values that need
    them (most ids are small and padding is 0). Negative numbers become 10-byte two's-complement
    varints, as protobuf's int64 does.
    """
    n = len(values)
    flat = np.ascontiguousarray(values, dtype=np.int64).reshape(-1).view(np.uint64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if not flat.size:
        return b"", offsets
    nbytes = None
    width = 1
    for k in range(1, 10):
        above = flat >= np.uint64(1 << (7 * k))
        if not above.any():
            break
        nbytes = above.astype(np.int32) if nbytes is None else nbytes + above
        width += 1
    if nbytes is None:  # every value fits one byte
        offsets[1:] = np.arange(1, n + 1) * (flat.size // n)
        return flat.astype(np.uint8).tobytes(), offsets
    nbytes += 1
    ends = np.cumsum(nbytes, dtype=np.int64)
    starts = ends - nbytes
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    out[starts] = (flat.astype(np.uint8) & np.uint8(0x7F)) | (nbytes > 1).view(np.uint8) << np.uint8(7)
    for level in range(1, width):
        chosen = np.flatnonzero(nbytes > level)
        part = (flat[chosen] >> np.uint64(7 * level)).astype(np.uint8) & np.uint8(0x7F)
        more = (nbytes[chosen] > level + 1).view(np.uint8) << np.uint8(7)
        out[starts[chosen] + level] = part | more
    offsets[1:] = ends.reshape(n, -1)[:, -1]
    return out.tobytes(), offsets


# Feature's oneof: float_list is field 2, int64_list field 3 (length-delimited either way).
_FLOAT_LIST, _INT64_LIST = b"\x12", b"\x1a"


def _feature_prefix(header: bytes, packed_length: int, kind: bytes = _INT64_LIST) -> bytes:
    """Everything of a map entry `name -> Feature(int64_list | float_list)` before its packed values."""
    value_list = 1 + len(_varint(packed_length)) + packed_length
    feature = 1 + len(_varint(value_list)) + value_list
    entry = len(header) + len(_varint(feature)) + feature
    return b"".join((b"\x0a", _varint(entry), header, _varint(feature), kind,
                     _varint(value_list), b"\x0a", _varint(packed_length)))


def _packed_floats(values: np.ndarray) -> Tuple[bytes, np.ndarray]:
    """Little-endian float32s of every row of [n, k], concatenated, and row byte offsets."""
    rows = np.ascontiguousarray(values, dtype="<f4").reshape(len(values), -1)
    width = rows.shape[1] * 4
    return rows.tobytes(), np.arange(len(rows) + 1, dtype=np.int64) * width


def serialize_examples(features: Mapping[str, np.ndarray]) -> List[bytes]:
    """Serialized `tf.train.Example`s with one feature per key ([n] or [n, k] arrays): int64 for
    integer arrays, float32 for floating-point ones (e.g. a teacher's scores).

    Protobuf wire format written directly: TensorFlow's protos would make every AWE worker import
    TensorFlow, and per-example message building is the slowest part of preprocessing. Entry
    prefixes depend only on the packed length (and whole entries of scalars only on the value), so
    they are cached; keys are written sorted, which keeps the bytes deterministic.
    """
    names = sorted(features)
    n = len(features[names[0]]) if names else 0
    columns = []
    for name in names:
        values = np.asarray(features[name])
        if len(values) != n:
            raise ConfigError(f"feature {name!r} has {len(values)} rows, expected {n}")
        is_float = values.dtype.kind == "f"
        data, offsets = _packed_floats(values) if is_float else _packed_varints(values)
        key = name.encode("utf-8")
        header = b"\x0a" + _varint(len(key)) + key + b"\x12"
        columns.append((header, data, offsets.tolist(), values.ndim == 1,
                        _FLOAT_LIST if is_float else _INT64_LIST, {}))
    records = []
    append = records.append
    for i in range(n):
        parts = []
        for header, data, offsets, scalar, kind, cache in columns:
            packed = data[offsets[i]:offsets[i + 1]]
            if scalar:
                entry = cache.get(packed)
                if entry is None:
                    entry = cache[packed] = _feature_prefix(header, len(packed), kind) + packed
                parts.append(entry)
            else:
                prefix = cache.get(len(packed))
                if prefix is None:
                    prefix = cache[len(packed)] = _feature_prefix(header, len(packed), kind)
                parts.append(prefix)
                parts.append(packed)
        body = b"".join(parts)
        append(b"\x0a" + _varint(len(body)) + body)
    return records


def _masked_crc(data: bytes) -> int:
    import google_crc32c
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(record: bytes) -> bytes:
    """One TFRecord entry: length, CRC of length, payload, CRC of payload (masked CRC32C)."""
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", _masked_crc(length)), record,
                     struct.pack("<I", _masked_crc(record))))

