"""MediaPipe TextClassifier metadata, written and read without MediaPipe's metadata writers.

`mediapipe`'s `metadata_writers` module does not import in this environment, and `mediapipe` is
only a test dependency, so the export step cannot rely on it. The metadata is a small flatbuffer
(schema `mediapipe/tasks/metadata/metadata_schema.fbs`, identifier `M001`): this module encodes and
decodes the part of that schema a classifier uses from a table of field slots, with nothing but
`flatbuffers`. The model side uses the TFLite schema bindings that ship with LiteRT.

A packed model is `TFL3 flatbuffer` (with a `TFLITE_METADATA` buffer) followed by an uncompressed
zip of the associated files (vocabulary, labels); MediaPipe refuses a deflated zip.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import flatbuffers
import numpy as np
from flatbuffers import number_types as _nt
from flatbuffers.table import Table

from components import labels as labels_io
from components import vocabulary as vocab_io
from components.errors import ModelFormatError, VocabularyError

try:  # LiteRT ships the TFLite schema bindings; TensorFlow has the same file.
    from ai_edge_litert import schema_py_generated as _tfl
except ImportError:  # pragma: no cover
    from tensorflow.lite.python import schema_py_generated as _tfl

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
MODEL_NAME = "TextClassifier"
MODEL_DESCRIPTION = "Scores a text against each label."
MIN_PARSER_VERSION = "1.2.1"
# MediaPipe's RegexTokenizer splits with RE2, where `\w` is ASCII-only: Model Maker's `[^\w']+`
# cut "café", "ÜBER" or "日本語" apart on device although training (Python's Unicode `\w`) kept
# them whole. Python's `\w` is exactly `[\p{L}\p{N}_]` (letters, numbers of every kind, the
# underscore; not combining marks), which RE2 understands, so the device splits where training
# does (components/tokenizers.py; checked code point by code point in
# tests/test_awe_device_parity.py).
REGEX_DELIM = r"[^\p{L}\p{N}_']+"
VOCAB_FILE = vocab_io.VOCAB_FILE
LABELS_FILE = labels_io.LABELS_FILE
_VOCAB_DESCRIPTION = "Token to id table for the tokenizer."

# ---------------------------------------------------------------------------------------------
# The metadata schema, as field slots. A union takes two slots (type byte, then value), exactly
# as flatc lays it out. Types: str, i8/u8/i32/u32/f32 scalars, [x] vectors, a table name, or
# "union:<Union>". Decoded tables are dicts; a union value carries its member in "_type".

_SCHEMA: Dict[str, List[Tuple[str, str]]] = {
    "AssociatedFile": [("name", "str"), ("description", "str"), ("type", "i8"),
                       ("locale", "str"), ("version", "str")],
    "FeatureProperties": [],
    "ImageSize": [("width", "u32"), ("height", "u32")],
    "ImageProperties": [("color_space", "i8"), ("default_size", "ImageSize")],
    "BoundingBoxProperties": [("index", "[u32]"), ("type", "i8"), ("coordinate_type", "i8")],
    "AudioProperties": [("sample_rate", "u32"), ("channels", "u32")],
    "ValueRange": [("min", "i32"), ("max", "i32")],
    "Content": [("content_properties", "union:ContentProperties"), ("range", "ValueRange")],
    "NormalizationOptions": [("mean", "[f32]"), ("std", "[f32]")],
    "ScoreCalibrationOptions": [("score_transformation", "i8"), ("default_score", "f32")],
    "ScoreThresholdingOptions": [("global_score_threshold", "f32")],
    "BertTokenizerOptions": [("vocab_file", "[AssociatedFile]")],
    "SentencePieceTokenizerOptions": [("sentencePiece_model", "[AssociatedFile]"),
                                      ("vocab_file", "[AssociatedFile]")],
    "RegexTokenizerOptions": [("delim_regex_pattern", "str"), ("vocab_file", "[AssociatedFile]")],
    "ProcessUnit": [("options", "union:ProcessUnitOptions")],
    "Stats": [("max", "[f32]"), ("min", "[f32]")],
    "TensorGroup": [("name", "str"), ("tensor_names", "[str]")],
    "TensorMetadata": [("name", "str"), ("description", "str"), ("dimension_names", "[str]"),
                       ("content", "Content"), ("process_units", "[ProcessUnit]"),
                       ("stats", "Stats"), ("associated_files", "[AssociatedFile]")],
    "CustomMetadata": [("name", "str"), ("data", "[u8]")],
    "SubGraphMetadata": [("name", "str"), ("description", "str"),
                         ("input_tensor_metadata", "[TensorMetadata]"),
                         ("output_tensor_metadata", "[TensorMetadata]"),
                         ("associated_files", "[AssociatedFile]"),
                         ("input_process_units", "[ProcessUnit]"),
                         ("output_process_units", "[ProcessUnit]"),
                         ("input_tensor_groups", "[TensorGroup]"),
                         ("output_tensor_groups", "[TensorGroup]"),
                         ("custom_metadata", "[CustomMetadata]")],
    "ModelMetadata": [("name", "str"), ("description", "str"), ("version", "str"),
                      ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "str"),
                      ("license", "str"), ("associated_files", "[AssociatedFile]"),
                      ("min_parser_version", "str")],
}
_UNIONS = {
    "ContentProperties": [None, "FeatureProperties", "ImageProperties", "BoundingBoxProperties",
                          "AudioProperties"],
    "ProcessUnitOptions": [None, "NormalizationOptions", "ScoreCalibrationOptions",
                           "ScoreThresholdingOptions", "BertTokenizerOptions",
                           "SentencePieceTokenizerOptions", "RegexTokenizerOptions"],
}
FILE_TYPES = ["UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
              "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE"]
_SCALARS = {"i8": _nt.Int8Flags, "u8": _nt.Uint8Flags, "i32": _nt.Int32Flags,
            "u32": _nt.Uint32Flags, "f32": _nt.Float32Flags}
_NUMPY = {"u8": np.uint8, "u32": np.uint32, "f32": np.float32}


def _slots(table: str) -> List[Tuple[int, str, str]]:
    """(vtable slot, field, type) per field; a union's value sits one slot after its type."""
    result, slot = [], 0
    for name, kind in _SCHEMA[table]:
        if kind.startswith("union:"):
            slot += 1
        result.append((slot, name, kind))
        slot += 1
    return result


def _encode(builder: flatbuffers.Builder, table: str, obj: Mapping[str, Any]) -> int:
    unknown = set(obj) - {name for name, _ in _SCHEMA[table]} - {"_type"}
    if unknown:
        raise ModelFormatError(f"metadata table {table} has no field(s) {sorted(unknown)}")
    offsets: Dict[str, int] = {}
    for _, name, kind in _slots(table):  # children first: flatbuffers builds bottom-up
        value = obj.get(name)
        if value is None or kind in _SCALARS:
            continue
        if kind == "str":
            offsets[name] = builder.CreateString(value)
        elif kind.startswith("union:"):
            offsets[name] = _encode(builder, value["_type"], value)
        elif kind.startswith("["):
            inner = kind[1:-1]
            if inner in _NUMPY:
                offsets[name] = builder.CreateNumpyVector(np.asarray(value, dtype=_NUMPY[inner]))
                continue
            items = [builder.CreateString(v) if inner == "str" else _encode(builder, inner, v)
                     for v in value]
            builder.StartVector(4, len(items), 4)
            for item in reversed(items):
                builder.PrependUOffsetTRelative(item)
            offsets[name] = builder.EndVector()
        else:
            offsets[name] = _encode(builder, kind, value)
    slots = _slots(table)
    builder.StartObject(slots[-1][0] + 1 if slots else 0)
    for slot, name, kind in slots:
        value = obj.get(name)
        if value is None:
            continue
        if kind in _SCALARS:
            if name == "type" and table == "AssociatedFile" and isinstance(value, str):
                value = FILE_TYPES.index(value)
            builder.PrependSlot(_SCALARS[kind], slot, value, None)
        elif kind.startswith("union:"):
            members = _UNIONS[kind[6:]]
            builder.PrependUint8Slot(slot - 1, members.index(value["_type"]), 0)
            builder.PrependUOffsetTRelativeSlot(slot, offsets[name], 0)
        else:
            builder.PrependUOffsetTRelativeSlot(slot, offsets[name], 0)
    return builder.EndObject()


def _decode(buf: bytes, pos: int, table: str) -> Dict[str, Any]:
    tab = Table(buf, pos)
    out: Dict[str, Any] = {}
    for slot, name, kind in _slots(table):
        o = tab.Offset(4 + 2 * slot)
        if not o:
            continue
        if kind in _SCALARS:
            value = tab.Get(_SCALARS[kind], o + tab.Pos)
            if name == "type" and table == "AssociatedFile":
                value = FILE_TYPES[value] if 0 <= value < len(FILE_TYPES) else value
            out[name] = value
        elif kind == "str":
            out[name] = tab.String(o + tab.Pos).decode("utf-8")
        elif kind.startswith("union:"):
            type_o = tab.Offset(4 + 2 * (slot - 1))
            member = _UNIONS[kind[6:]][tab.Get(_nt.Uint8Flags, type_o + tab.Pos)] if type_o else None
            if member:
                out[name] = {"_type": member, **_decode(buf, tab.Indirect(o + tab.Pos), member)}
        elif kind.startswith("["):
            inner, start, count = kind[1:-1], tab.Vector(o), tab.VectorLen(o)
            if inner in _NUMPY:
                out[name] = np.frombuffer(buf, dtype=_NUMPY[inner], count=count,
                                          offset=start).tolist()
            elif inner == "str":
                out[name] = [tab.String(start + 4 * i).decode("utf-8") for i in range(count)]
            else:
                out[name] = [_decode(buf, tab.Indirect(start + 4 * i), inner) for i in range(count)]
        else:
            out[name] = _decode(buf, tab.Indirect(o + tab.Pos), kind)
    return out


def encode_metadata(metadata: Mapping[str, Any]) -> bytes:
    """ModelMetadata dict -> `M001` flatbuffer bytes."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(_encode(builder, "ModelMetadata", metadata), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def decode_metadata(buf: bytes) -> Dict[str, Any]:
    """`M001` flatbuffer bytes -> ModelMetadata dict (the inverse of `encode_metadata`)."""
    if bytes(buf[4:8]) != METADATA_IDENTIFIER:
        raise ModelFormatError("not a TFLite metadata flatbuffer (identifier is not M001)")
    return _decode(bytes(buf), flatbuffers.encode.Get(_nt.UOffsetTFlags.packer_type, buf, 0),
                   "ModelMetadata")


# ---------------------------------------------------------------------------------------------
# The .tflite side.

CACHE_LINE = 64
_CACHE_ALIGNED_MIN_BYTES = 4096


class _AlignedBuilder(flatbuffers.Builder):
    """Aligns weight buffers for the kernels that read them in place.

    The stock builder aligns a uint8 vector to 1 byte; the converter writes weights 16-byte
    aligned. Large buffers (an embedding table) go on a cache-line boundary: TFLite's GATHER
    copies table rows straight out of the (memory-mapped) file, and a 64-byte row that
    straddles two cache lines costs the AWE model about 4 % of its latency. Small buffers keep
    16 bytes, so the padding stays a few bytes per model.
    """

    def StartVector(self, elemSize, numElems, alignment):
        if elemSize == 1:
            alignment = max(alignment, CACHE_LINE if numElems >= _CACHE_ALIGNED_MIN_BYTES else 16)
        return super().StartVector(elemSize, numElems, alignment)


def _model(tflite_bytes: bytes):
    buf = bytes(tflite_bytes)
    if buf[4:8] != MODEL_IDENTIFIER:
        raise ModelFormatError("not a TFLite model (file identifier is not TFL3)")
    return _tfl.Model.GetRootAs(buf, 0)


def _name(tensor) -> str:
    return tensor.Name().decode("utf-8")


def input_tensor_names(tflite_bytes: bytes) -> List[str]:
    """Names of the first subgraph's inputs, in the order the interpreter exposes them."""
    graph = _model(tflite_bytes).Subgraphs(0)
    return [_name(graph.Tensors(graph.Inputs(i))) for i in range(graph.InputsLength())]


def output_tensor_names(tflite_bytes: bytes) -> List[str]:
    graph = _model(tflite_bytes).Subgraphs(0)
    return [_name(graph.Tensors(graph.Outputs(i))) for i in range(graph.OutputsLength())]


def _metadata_buffer(tflite_bytes: bytes) -> Optional[bytes]:
    model = _model(tflite_bytes)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def associated_files(tflite_bytes: bytes) -> Dict[str, bytes]:
    """Files zipped after the flatbuffer (name -> contents); {} when there are none."""
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(tflite_bytes))) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def read_metadata(tflite_bytes: bytes) -> Dict[str, Any]:
    """{"metadata": ModelMetadata dict or None, "files": [associated file names],
    "input_names"/"output_names": tensor names} — what a test or a re-packer needs to know."""
    raw = _metadata_buffer(tflite_bytes)
    return {
        "metadata": decode_metadata(raw) if raw is not None else None,
        "files": sorted(associated_files(tflite_bytes)),
        "input_names": input_tensor_names(tflite_bytes),
        "output_names": output_tensor_names(tflite_bytes),
    }


def attach_metadata(tflite_bytes: bytes, metadata: bytes | Mapping[str, Any],
                    files: Mapping[str, bytes]) -> bytes:
    """Model bytes with `metadata` as its TFLITE_METADATA buffer and `files` zipped after it.

    Any metadata and zip the input already had are replaced, so this is safe to run on a model
    that went through it before (or on a Model Maker export).
    """
    raw = encode_metadata(metadata) if isinstance(metadata, Mapping) else bytes(metadata)
    model = _tfl.ModelT.InitFromPackedBuf(bytes(tflite_bytes), 0)  # reads the flatbuffer only
    buffer = _tfl.BufferT()
    buffer.data = np.frombuffer(raw, dtype=np.uint8)
    model.metadata = list(model.metadata or [])
    for entry in model.metadata:
        if entry.name in (METADATA_NAME, METADATA_NAME.encode()):
            model.buffers[entry.buffer] = buffer
            break
    else:
        model.buffers.append(buffer)
        entry = _tfl.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = _AlignedBuilder(max(1024, len(tflite_bytes) + len(raw) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO()
    out.write(builder.Output())
    if files:
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(files):
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name],
                                 compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# TextClassifier metadata.

def _file(name: str, description: str, file_type: str) -> Dict[str, Any]:
    return {"name": name, "description": description, "type": file_type}


def _score_output() -> Dict[str, Any]:
    return {
        "name": "score",
        "description": "Probability of each label.",
        "content": {"content_properties": {"_type": "FeatureProperties"}},
        "stats": {"max": [1.0], "min": [0.0]},
        "associated_files": [_file(LABELS_FILE, "Label names, one per score.",
                                   "TENSOR_AXIS_LABELS")],
    }


PRODUCER_KEY = "textclf"


def _model_metadata(subgraph: Dict[str, Any], name: str, description: str,
                    version: Optional[str], author: Optional[str], license: Optional[str],
                    producer: Optional[Mapping[str, Any]] = None):
    if producer:
        # What made the model (its architecture), for `TextClassifier.load`; MediaPipe ignores it.
        data = json.dumps(dict(producer), sort_keys=True).encode("utf-8")
        subgraph = {**subgraph, "custom_metadata": [{"name": PRODUCER_KEY, "data": list(data)}]}
    meta = {"name": name, "description": description, "subgraph_metadata": [subgraph],
            "min_parser_version": MIN_PARSER_VERSION}
    meta.update({k: v for k, v in (("version", version), ("author", author), ("license", license)) if v})
    return meta


def _check_single_output(tflite_bytes: bytes, num_labels: int) -> None:
    graph = _model(tflite_bytes).Subgraphs(0)
    if graph.OutputsLength() != 1:
        raise ModelFormatError(f"a text classifier has one output tensor, this model has {graph.OutputsLength()}")
    shape = graph.Tensors(graph.Outputs(0)).ShapeAsNumpy()
    if shape[-1] != num_labels:
        raise ModelFormatError(f"model scores {shape[-1]} classes but {num_labels} label names were given")


def write_regex_tokenizer_metadata(tflite_bytes: bytes, vocab_pairs: Sequence[Tuple[str, int]],
                                   label_names: Sequence[str], *,
                                   delim_regex_pattern: str = REGEX_DELIM,
                                   name: str = MODEL_NAME, description: str = MODEL_DESCRIPTION,
                                   version: Optional[str] = None, author: Optional[str] = None,
                                   license: Optional[str] = None,
                                   producer: Optional[Mapping[str, Any]] = None) -> bytes:
    """A one-input (token ids) .tflite that MediaPipe's TextClassifier tokenizes with its regex
    tokenizer and labels by itself. `vocab_pairs` is packed as given (several spellings may share
    an id); `<PAD>`, `<START>` and `<UNKNOWN>` must be among them."""
    if len(input_tensor_names(tflite_bytes)) != 1:
        raise ModelFormatError("a regex-tokenized classifier has one input tensor (token ids)")
    _check_single_output(tflite_bytes, len(label_names))
    present = {token for token, _ in vocab_pairs}
    missing = [token for token in ("<PAD>", "<START>", "<UNKNOWN>") if token not in present]
    if missing:
        raise VocabularyError(f"no {', '.join(missing)} entry; MediaPipe's regex tokenizer needs "
                              "<PAD>, <START> and <UNKNOWN>")
    vocab = vocab_io.token_id_bytes(vocab_pairs)
    tokenizer = {"options": {"_type": "RegexTokenizerOptions",
                             "delim_regex_pattern": delim_regex_pattern,
                             "vocab_file": [_file(VOCAB_FILE, _VOCAB_DESCRIPTION, "VOCABULARY")]}}
    subgraph = {
        "input_tensor_metadata": [{
            "name": "input_text",
            "description": "Token ids of the text.",
            "content": {"content_properties": {"_type": "FeatureProperties"}},
            "process_units": [tokenizer],
        }],
        "output_tensor_metadata": [_score_output()],
    }
    meta = _model_metadata(subgraph, name, description, version, author, license, producer)
    return attach_metadata(tflite_bytes, meta, {VOCAB_FILE: vocab, LABELS_FILE: labels_io.to_bytes(label_names)})


_BERT_INPUTS = {
    "ids": "WordPiece ids of the text.",
    "mask": "1 on real tokens, 0 on padding.",
    "segment_ids": "0 on the first sentence, 1 on a second one.",
}


def bert_input_role(tensor_name: str) -> str:
    """'ids', 'mask' or 'segment_ids' for a BERT input tensor name (ours or Model Maker's)."""
    lowered = tensor_name.lower()
    if "mask" in lowered:
        return "mask"
    if "type" in lowered or "segment" in lowered:
        return "segment_ids"
    return "ids"


def write_bert_tokenizer_metadata(tflite_bytes: bytes, vocab: bytes, label_names: Sequence[str], *,
                                  name: str = MODEL_NAME, description: str = MODEL_DESCRIPTION,
                                  version: Optional[str] = None, author: Optional[str] = None,
                                  license: Optional[str] = None,
                                  producer: Optional[Mapping[str, Any]] = None) -> bytes:
    """A BERT .tflite for MediaPipe: WordPiece tokenizer (`vocab`: the vocab.txt bytes) on the
    subgraph, three named inputs.

    MediaPipe pairs input metadata with tensors by position, and the converter may reorder the
    inputs, so the metadata follows the model's own order, read from its tensor names.
    """
    names = input_tensor_names(tflite_bytes)
    roles = [bert_input_role(n) for n in names]
    if sorted(roles) != sorted(_BERT_INPUTS):
        raise ModelFormatError(f"cannot tell the BERT inputs (ids, mask, segment ids) apart from "
                               f"the tensor names {names}")
    _check_single_output(tflite_bytes, len(label_names))
    if not bytes(vocab).strip():
        raise VocabularyError("the WordPiece vocabulary to pack is empty")
    subgraph = {
        "input_tensor_metadata": [
            {"name": role, "description": _BERT_INPUTS[role],
             "content": {"content_properties": {"_type": "FeatureProperties"}}}
            for role in roles],
        "output_tensor_metadata": [_score_output()],
        "input_process_units": [{"options": {
            "_type": "BertTokenizerOptions",
            "vocab_file": [_file(VOCAB_FILE, _VOCAB_DESCRIPTION, "VOCABULARY")]}}],
    }
    meta = _model_metadata(subgraph, name, description, version, author, license, producer)
    return attach_metadata(tflite_bytes, meta, {VOCAB_FILE: bytes(vocab), LABELS_FILE: labels_io.to_bytes(label_names)})


def copy_metadata(source_tflite: bytes, target_tflite: bytes) -> bytes:
    """`target_tflite` carrying `source_tflite`'s metadata and associated files.

    For a re-converted (e.g. quantized) model of the same graph. Input tensor metadata is
    re-paired by tensor name, in case the converter ordered the inputs differently this time.
    """
    raw = _metadata_buffer(source_tflite)
    if raw is None:
        raise ModelFormatError("the source model has no TFLite metadata to copy")
    files = associated_files(source_tflite)
    src_names, dst_names = input_tensor_names(source_tflite), input_tensor_names(target_tflite)
    if src_names != dst_names:
        if sorted(src_names) != sorted(dst_names):
            raise ModelFormatError(f"input tensors differ: {src_names} vs {dst_names}")
        meta = decode_metadata(raw)
        subgraph = meta["subgraph_metadata"][0]
        by_name = dict(zip(src_names, subgraph["input_tensor_metadata"]))
        subgraph["input_tensor_metadata"] = [by_name[n] for n in dst_names]
        return attach_metadata(target_tflite, meta, files)
    return attach_metadata(target_tflite, raw, files)


def producer(tflite_bytes: bytes) -> Dict[str, Any]:
    """What our exporter recorded about the model (e.g. {"architecture": "awe"}); {} otherwise."""
    raw = _metadata_buffer(tflite_bytes)
    if raw is None:
        return {}
    for subgraph in decode_metadata(raw).get("subgraph_metadata", []):
        for entry in subgraph.get("custom_metadata", []):
            if entry.get("name") == PRODUCER_KEY:
                try:
                    return json.loads(bytes(entry.get("data", [])).decode("utf-8"))
                except ValueError:
                    return {}
    return {}


def packed_labels(tflite_bytes: bytes) -> Optional[List[str]]:
    """The label names packed in a model (its labels.txt), or None when it packs none."""
    data = associated_files(tflite_bytes).get(LABELS_FILE)
    return labels_io.parse(data, f"the model's {LABELS_FILE}") if data else None


def write_file(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


__all__ = [
    "write_regex_tokenizer_metadata", "write_bert_tokenizer_metadata", "read_metadata", "copy_metadata",
    "attach_metadata", "associated_files", "input_tensor_names", "output_tensor_names", "encode_metadata",
    "decode_metadata", "bert_input_role", "packed_labels",
]
