"""Export with MediaPipe metadata: MediaPipe's TextClassifier must load our .tflite files and
classify like the Keras models they came from."""

import json
import os

import numpy as np
import pytest
from tflite_fixtures import LABELS, PROBE_TEXTS, make_awe, make_bert, mediapipe_classifier, mediapipe_scores

from components import architectures
from components import metadata as md
from components import vocabulary as vocab_io
from components.errors import ModelFormatError, VocabularyError


@pytest.fixture(scope="module")
def awe(tmp_path_factory):
    return make_awe(str(tmp_path_factory.mktemp("awe")))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_bert(str(tmp_path_factory.mktemp("bert")))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _pairs(vocab_dir):
    return vocab_io.enumerate_pairs(vocab_io.read_folder(vocab_dir).tokens)


def _agrees_with_keras(classifier, fixture, texts):
    ours = fixture["predict"](texts)
    for text, probs in zip(texts, ours):
        scores = mediapipe_scores(classifier, text)
        assert set(scores) == set(LABELS)
        assert max(scores, key=scores.get) == LABELS[int(np.argmax(probs))], text
        np.testing.assert_allclose([scores[name] for name in LABELS], probs, atol=1e-4, err_msg=text)


def test_awe_export_folder_and_metadata(awe):
    export_dir = awe["export_dir"]
    for name in ("model.tflite", "labels.txt", "vocab.txt", "export.json", "saved_model"):
        assert os.path.exists(os.path.join(export_dir, name)), name
    assert awe["export"]["model_bytes"] == os.path.getsize(awe["export"]["tflite"])
    assert _read(os.path.join(export_dir, "vocab.txt")) == _read(os.path.join(awe["vocab_dir"], "vocab.txt"))
    assert _read(os.path.join(export_dir, "labels.txt")).decode().split() == LABELS

    info = md.read_metadata(_read(awe["export"]["tflite"]))
    meta = info["metadata"]
    assert meta["name"] == "TextClassifier" and meta["min_parser_version"] == "1.2.1"
    assert info["files"] == ["labels.txt", "vocab.txt"]
    (tensor,) = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    (unit,) = tensor["process_units"]
    assert unit["options"]["_type"] == "RegexTokenizerOptions"
    assert unit["options"]["delim_regex_pattern"] == md.REGEX_DELIM == r"[^\p{L}\p{N}_']+"
    assert unit["options"]["vocab_file"][0] == {
        "name": "vocab.txt", "type": "VOCABULARY",
        "description": "Token to id table for the tokenizer."}
    (score,) = meta["subgraph_metadata"][0]["output_tensor_metadata"]
    assert score["name"] == "score"
    assert score["associated_files"][0]["name"] == "labels.txt"
    assert score["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"


def test_awe_mediapipe_agrees_with_keras(awe):
    with mediapipe_classifier(awe["export"]["tflite"]) as classifier:
        _agrees_with_keras(classifier, awe, PROBE_TEXTS + awe["test_texts"][:10])


def test_awe_on_device_tokenization_is_case_insensitive(awe):
    with mediapipe_classifier(awe["export"]["tflite"]) as classifier:
        lower = mediapipe_scores(classifier, "the movie was great")
        variants = {v: mediapipe_scores(classifier, v) for v in
                    ("the movie was GREAT", "The Movie Was Great", "THE MOVIE WAS GREAT")}
        # "great" must not be <UNKNOWN> on device: it scores differently from an unknown word
        unknown = mediapipe_scores(classifier, "the movie was zzzz")
    for variant, scores in variants.items():
        np.testing.assert_allclose([scores[n] for n in LABELS], [lower[n] for n in LABELS],
                                   atol=1e-6, err_msg=variant)
    assert abs(unknown["positive"] - lower["positive"]) > 1e-3

    vocab = md.associated_files(_read(awe["export"]["tflite"]))["vocab.txt"].decode().splitlines()
    ids = dict(line.rsplit(" ", 1) for line in vocab)
    assert ids["great"] == ids["Great"] == ids["GREAT"]
    assert ids["<START>"] == "1" and "<Start>" not in ids


def test_awe_without_lower_case_keeps_vocab_verbatim(awe, tmp_path):
    float_bytes = md.attach_metadata(_read(awe["export"]["tflite"]), {"name": "x"}, {})
    info = {"model_options": {"do_lower_case": False, "device_case_variants": True}}
    packed = architectures.get("awe").write_metadata(float_bytes, vocab_io.read_folder(awe["vocab_dir"]),
                                                     LABELS, info)
    vocab = md.associated_files(packed)["vocab.txt"]
    assert vocab == _read(os.path.join(awe["vocab_dir"], "vocab.txt"))


def test_bert_export_loads_in_mediapipe(bert):
    packed = _read(bert["export"]["tflite"])
    info = md.read_metadata(packed)
    subgraph = info["metadata"]["subgraph_metadata"][0]
    names = [t["name"] for t in subgraph["input_tensor_metadata"]]
    # metadata follows the converted model's own input order, whatever the converter chose
    assert names == [md.bert_input_role(n) for n in info["input_names"]]
    assert sorted(names) == ["ids", "mask", "segment_ids"]
    assert subgraph["input_process_units"][0]["options"]["_type"] == "BertTokenizerOptions"
    assert md.associated_files(packed)["vocab.txt"] == _read(os.path.join(bert["vocab_dir"], "vocab.txt"))
    assert os.path.exists(os.path.join(bert["export_dir"], "tokenizer.json"))

    with mediapipe_classifier(bert["export"]["tflite"]) as classifier:
        _agrees_with_keras(classifier, bert, PROBE_TEXTS)
        good = mediapipe_scores(classifier, "a wonderful charming story")
        bad = mediapipe_scores(classifier, "the worst boring film")
        shouted = mediapipe_scores(classifier, "THE WORST BORING FILM")
    # MediaPipe's WordPiece lower-cases (the tiny vocab has no upper-case pieces, so a cased
    # tokenizer would produce [UNK]s here); export warns about cased encoders because of this.
    assert shouted == pytest.approx(bad, abs=1e-6)
    assert max(good, key=good.get) == "positive" and max(bad, key=bad.get) == "negative"


def test_metadata_matches_mediapipe_schema_bindings(awe, bert):
    """Our flatbuffer codec against MediaPipe's generated reader (an independent decoder)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    raw = md._metadata_buffer(_read(awe["export"]["tflite"]))
    meta = schema.ModelMetadataT.InitFromPackedBuf(raw, 0)
    assert meta.name == b"TextClassifier" and meta.minParserVersion == b"1.2.1"
    unit = meta.subgraphMetadata[0].inputTensorMetadata[0].processUnits[0]
    assert unit.optionsType == schema.ProcessUnitOptions.RegexTokenizerOptions
    assert unit.options.delimRegexPattern == md.REGEX_DELIM.encode()
    assert unit.options.vocabFile[0].type == schema.AssociatedFileType.VOCABULARY
    out = meta.subgraphMetadata[0].outputTensorMetadata[0]
    assert list(out.stats.max) == [1.0] and list(out.stats.min) == [0.0]
    assert out.content.contentPropertiesType == schema.ContentProperties.FeatureProperties

    raw = md._metadata_buffer(_read(bert["export"]["tflite"]))
    sub = schema.ModelMetadataT.InitFromPackedBuf(raw, 0).subgraphMetadata[0]
    assert sub.inputProcessUnits[0].optionsType == schema.ProcessUnitOptions.BertTokenizerOptions
    assert len(sub.inputTensorMetadata) == 3


def test_metadata_codec_round_trip():
    meta = {
        "name": "m", "version": "v1", "min_parser_version": "1.2.1",
        "associated_files": [{"name": "a.txt", "type": "DESCRIPTIONS", "locale": "en"}],
        "subgraph_metadata": [{
            "input_tensor_metadata": [{
                "name": "x", "dimension_names": ["batch", "len"],
                "content": {"content_properties": {"_type": "ImageProperties", "color_space": 1,
                                                   "default_size": {"width": 3, "height": 4}},
                            "range": {"min": -1, "max": 5}},
                "process_units": [{"options": {"_type": "NormalizationOptions", "mean": [0.5], "std": [2.0]}}],
            }],
            "output_tensor_groups": [{"name": "g", "tensor_names": ["a", "b"]}],
            "custom_metadata": [{"name": "c", "data": [1, 2, 3]}],
        }],
    }
    assert md.decode_metadata(md.encode_metadata(meta)) == meta
    with pytest.raises(ModelFormatError, match="no field"):
        md.encode_metadata({"nmae": "typo"})


def test_rewriting_metadata_replaces_it(awe):
    packed = _read(awe["export"]["tflite"])
    again = md.write_regex_tokenizer_metadata(packed, _pairs(awe["vocab_dir"]), ["a", "b"])
    info = md.read_metadata(again)
    assert info["files"] == ["labels.txt", "vocab.txt"]
    assert md.associated_files(again)["labels.txt"] == b"a\nb\n"
    from ai_edge_litert import schema_py_generated as tfl
    model = tfl.Model.GetRootAs(again, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1


def test_copy_metadata_follows_target_input_order(bert):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    source = _read(bert["export"]["tflite"])
    model = tfl.ModelT.InitFromPackedBuf(source, 0)
    model.subgraphs[0].inputs = list(reversed(list(model.subgraphs[0].inputs)))
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target = bytes(builder.Output())

    copied = md.copy_metadata(source, target)
    info = md.read_metadata(copied)
    names = [t["name"] for t in info["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"]]
    assert info["input_names"] == list(reversed(md.input_tensor_names(source)))
    assert names == [md.bert_input_role(n) for n in info["input_names"]]
    assert md.associated_files(copied) == md.associated_files(source)


def test_writer_rejects_bad_inputs(awe, bert, tmp_path):
    awe_bytes, bert_bytes = _read(awe["export"]["tflite"]), _read(bert["export"]["tflite"])
    pairs = _pairs(awe["vocab_dir"])
    with pytest.raises(ModelFormatError, match="3 label names"):
        md.write_regex_tokenizer_metadata(awe_bytes, pairs, ["a", "b", "c"])
    with pytest.raises(ModelFormatError, match="one input"):
        md.write_regex_tokenizer_metadata(bert_bytes, pairs, LABELS)
    with pytest.raises(ModelFormatError, match="BERT inputs"):
        md.write_bert_tokenizer_metadata(awe_bytes, b"[PAD]\n", LABELS)
    with pytest.raises(VocabularyError, match="<START>"):
        md.write_regex_tokenizer_metadata(awe_bytes, [("<PAD>", 0), ("hello", 1)], LABELS)
    with pytest.raises(ModelFormatError, match="TFL3"):
        md.read_metadata(b"not a model at all")


def test_export_info_records_what_quantize_needs(awe, bert):
    with open(os.path.join(awe["export_dir"], "export.json")) as f:
        info = json.load(f)
    assert info["architecture"] == "awe" and info["seq_len"] == awe["seq_len"]
    assert info["input_names"] == ["input_ids"] and info["label_names"] == LABELS
    assert bert["export"]["input_names"] == ["input_word_ids", "input_mask", "input_type_ids"]


def test_real_bert_classifier_exports_for_mediapipe(tmp_path):
    """The real BERT builder (tiny HF checkpoint) through save -> load_trained -> export."""
    pytest.importorskip("components.bert")
    from fixtures_bert import make_tiny_hf_checkpoint

    from components import tokenizers as tok
    from components.bert import build_bert_classifier
    from components.export import export_model
    from components.model_io import save_trained
    from components.options import BertModelOptions

    make_tiny_hf_checkpoint(str(tmp_path / "hf"))
    options = BertModelOptions(encoder=str(tmp_path / "hf"), seq_len=24, pooling="mean")
    model = build_bert_classifier(options, len(LABELS))
    os.makedirs(tmp_path / "vocab")
    (tmp_path / "vocab" / "vocab.txt").write_bytes((tmp_path / "hf" / "vocab.txt").read_bytes())
    (tmp_path / "vocab" / "tokenizer.json").write_text('{"do_lower_case": true}')
    tokenizer = tok.BertTokenizer(str(tmp_path / "vocab" / "vocab.txt"), 24, do_lower_case=True)
    texts = ["a wonderful charming movie", "The worst, most boring film!", "it was ok"]
    encoded = tokenizer.encode_batch(texts)
    inputs = {k: encoded[k] for k in tok.BERT_FEATURES}

    # A head solved so the three texts get logit gaps of -2, 0 and +2 (class-1 probabilities about
    # 0.12, 0.50, 0.88): a random head can squash two of them to nearly equal scores, and then
    # whether they "differ" depends on one kernel's rounding.
    import tf_keras as keras
    pooled = keras.Model(model.inputs, model.get_layer("dropout").output).predict(inputs, verbose=0)
    layer = model.get_layer("output")
    kernel, bias = layer.get_weights()
    kernel = np.zeros_like(kernel)
    kernel[:, 1] = np.linalg.lstsq(pooled.astype(np.float64), np.array([2.0, -2.0, 0.0]), rcond=None)[0]
    layer.set_weights([kernel.astype(np.float32), np.zeros_like(bias)])
    save_trained(str(tmp_path / "model"), model, "bert", options, LABELS)

    export = export_model(str(tmp_path / "model"), str(tmp_path / "vocab"), str(tmp_path / "export"))
    ours = model.predict(inputs, verbose=0)
    with mediapipe_classifier(export["tflite"]) as classifier:
        for text, probs in zip(texts, ours):
            scores = mediapipe_scores(classifier, text)
            np.testing.assert_allclose([scores[n] for n in LABELS], probs, atol=1e-4, err_msg=text)
    gaps = np.diff(np.sort(ours[:, 1]))
    assert gaps.min() > 0.2, ours  # the agreement above compares three clearly different scores


def _ops_after_delegation(tflite_path):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=tflite_path, num_threads=1)
    interpreter.allocate_tensors()
    return [op["op_name"] for op in interpreter._get_ops_details()]


def _gather_table_offset(tflite_bytes):
    """File offset of the embedding table (GATHER's first input) in a .tflite."""
    from ai_edge_litert import schema_py_generated as tfl
    model = tfl.Model.GetRootAs(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == tfl.BuiltinOperator.GATHER:
            data = model.Buffers(graph.Tensors(op.Inputs(0)).Buffer()).DataAsNumpy()
            return data.ctypes.data - np.frombuffer(tflite_bytes, np.uint8).ctypes.data, data.size
    raise AssertionError("no GATHER in the model")


def test_awe_export_is_laid_out_for_latency(tmp_path):
    """At the default size, everything after the embedding lookup runs in one XNNPACK partition
    (a second partition costs ~8 % of the latency) and the table sits on a cache line (a row
    straddling two costs ~4 %) — what keeps us at or below Model Maker's export."""
    from components.awe_model import build_awe_model
    from components.export import export_keras_model
    from components.options import AverageWordEmbeddingModelOptions

    options = AverageWordEmbeddingModelOptions(seq_len=256)
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    tokens = ["<PAD>", "<START>", "<UNKNOWN>"] + [f"w{i}" for i in range(options.vocab_size)]
    (vocab / "vocab.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
    model = build_awe_model(options, len(LABELS), vocab_size=len(tokens))
    info = {"architecture": "awe", "model_options": {"seq_len": 256}, "label_names": LABELS}
    export = export_keras_model(model, info, str(vocab), str(tmp_path / "export"))

    ops = _ops_after_delegation(export["tflite"])
    assert ops[0] == "GATHER" and ops.count("DELEGATE") == 1, ops
    packed = _read(export["tflite"])
    offset, size = _gather_table_offset(packed)
    assert size == len(tokens) * options.wordvec_dim * 4 and offset % md.CACHE_LINE == 0
    meta, files = md.read_metadata(packed)["metadata"], md.associated_files(packed)
    for extra in range(1, 64, 4):  # whatever precedes the table, it lands on a cache line
        moved = md.attach_metadata(packed, {**meta, "description": "x" * extra}, files)
        assert _gather_table_offset(moved)[0] % md.CACHE_LINE == 0

    ids = np.zeros((1, options.seq_len), np.int32)
    ids[0, :4] = [1, 17, 4242, 9000]
    from components.tflite_eval import TfliteClassifier
    scores = TfliteClassifier(export["tflite"]).predict_one({"input_ids": ids[0]})
    np.testing.assert_allclose(scores, model.predict(ids, verbose=0)[0], rtol=1e-5, atol=1e-6)
