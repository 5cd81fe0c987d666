"""The BERT classifier, its optimizers and length-bucketed batching, with a tiny encoder."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from fixtures_bert import make_tiny_hf_checkpoint, make_tiny_savedmodel_encoder, make_tiny_tf1_hub_module, tiny_vocab

import components  # noqa: F401
from components import bert
from components.encoders import ENCODER_INPUTS, resolve_encoder
from components.errors import ConfigError
from components.options import AverageWordEmbeddingHParams, BertHParams, BertModelOptions
from components.train import class_weight_map

VOCAB = {t: i for i, t in enumerate(tiny_vocab())}
SEQ_LEN = 24


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return make_tiny_hf_checkpoint(tmp_path_factory.mktemp("bert") / "tiny_hf", seed=7)


def tokenized_examples(n, seq_len=SEQ_LEN, seed=0):
    """Arrays shaped like `load_tokenized`'s: class 1 texts hold 'good', class 0 texts 'bad'."""
    rng = np.random.default_rng(seed)
    fillers = [VOCAB[w] for w in ("the", "movie", "film", "plot", "was", "a", "very", "story")]
    ids = np.zeros((n, seq_len), np.int32)
    lengths = np.minimum(rng.geometric(0.15, size=n) + 3, seq_len).astype(np.int32)
    labels = (np.arange(n) % 2).astype(np.int32)
    for i, (length, label) in enumerate(zip(lengths, labels)):
        body = rng.choice(fillers, size=length - 2)
        cue = rng.choice(length - 2, size=max(1, (length - 2) // 2), replace=False)
        body[cue] = VOCAB["good" if label else "bad"]
        ids[i, :length] = [VOCAB["[CLS]"], *body, VOCAB["[SEP]"]]
    mask = (np.arange(seq_len)[None] < lengths[:, None]).astype(np.int32)
    features = {"input_word_ids": ids, "input_mask": mask,
                "input_type_ids": np.zeros_like(ids), "length": lengths}
    return features, labels


def tokenized_dataset(n, seq_len=SEQ_LEN, seed=0):
    return tf.data.Dataset.from_tensor_slices(tokenized_examples(n, seq_len, seed))


def test_classifier_interface_and_pooling(hf_dir, tmp_path):
    model = bert.build_bert_classifier(BertModelOptions(encoder=hf_dir, seq_len=SEQ_LEN), 3)
    assert sorted(model.input_names) == sorted(ENCODER_INPUTS)
    for tensor in model.inputs:
        assert tensor.dtype == tf.int32 and tensor.shape.as_list() == [None, None]
    features, _ = tokenized_examples(5)
    probs = model({k: features[k] for k in ENCODER_INPUTS}).numpy()
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    layer_names = [layer.name for layer in model.layers]
    assert "output" in layer_names and "mean_pooling" not in layer_names

    mean = bert.build_bert_classifier(
        BertModelOptions(encoder=hf_dir, seq_len=SEQ_LEN, pooling="mean"), 2)
    assert "mean_pooling" in [layer.name for layer in mean.layers]
    # 'auto' follows the encoder: a checkpoint without trained pooler pools by mean.
    no_pooler = make_tiny_hf_checkpoint(tmp_path / "nopool", pooler=False)
    auto = bert.build_bert_classifier(BertModelOptions(encoder=no_pooler, seq_len=SEQ_LEN), 2)
    assert "mean_pooling" in [layer.name for layer in auto.layers]

    frozen = bert.build_bert_classifier(
        BertModelOptions(encoder=hf_dir, seq_len=SEQ_LEN, do_fine_tuning=False), 2)
    assert len(frozen.trainable_weights) == 2  # only the output layer
    with pytest.raises(ConfigError):
        bert.build_bert_classifier(BertModelOptions(encoder=hf_dir), 1)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_trimmed_batches_score_like_padded_ones(hf_dir, pooling):
    spec = resolve_encoder(hf_dir)
    model = bert.build_bert_classifier(
        BertModelOptions(encoder=hf_dir, seq_len=SEQ_LEN, pooling=pooling), 2, encoder_spec=spec)
    features, _ = tokenized_examples(6)
    longest = int(features["length"].max())
    padded = model({k: features[k] for k in ENCODER_INPUTS}).numpy()
    trimmed = model({k: features[k][:, :longest] for k in ENCODER_INPUTS}).numpy()
    np.testing.assert_allclose(padded, trimmed, atol=1e-5)


def test_bucketed_batches_group_and_trim(hf_dir):
    n, batch_size = 200, 16
    features, labels = tokenized_examples(n, seed=3)
    dataset = tokenized_dataset(n, seed=3)
    batches = list(bert.bucketed_batches(dataset, batch_size, SEQ_LEN, shuffle=True, seed=5))
    boundaries = np.array(bert.bucket_boundaries(SEQ_LEN))
    seen = []
    for x, y in batches:
        assert set(x) == set(ENCODER_INPUTS)
        assert all(x[k].dtype == tf.int32 for k in x) and y.dtype == tf.int32
        mask = x["input_mask"].numpy()
        lengths = mask.sum(axis=1)
        assert mask.shape[1] == lengths.max() <= SEQ_LEN  # trimmed to the longest example
        assert 1 <= len(lengths) <= batch_size
        buckets = np.searchsorted(boundaries, lengths, side="left")
        assert len(set(buckets)) == 1
        seen.extend(tuple(row[row > 0]) + (int(label),)
                    for row, label in zip(x["input_word_ids"].numpy(), y.numpy()))
    expected = [tuple(row[row > 0]) + (int(label),)
                for row, label in zip(features["input_word_ids"], labels)]
    assert sorted(seen) == sorted(expected)
    assert np.mean([len(b[1]) for b in batches]) > batch_size * 0.6
    # Same seed, fresh dataset: same batches (reproducible runs).
    again = list(bert.bucketed_batches(tokenized_dataset(n, seed=3), batch_size, SEQ_LEN,
                                       shuffle=True, seed=5))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))
    # Without `length`, the mask gives it.
    no_length = tokenized_dataset(n, seed=3).map(
        lambda f, y: ({k: v for k, v in f.items() if k != "length"}, y))
    widths = [x["input_mask"].shape[1]
              for x, _ in bert.bucketed_batches(no_length, batch_size, SEQ_LEN, False, 0)]
    assert max(widths) <= SEQ_LEN and min(widths) < SEQ_LEN


def test_padded_batches_keep_seq_len():
    batches = list(bert.padded_batches(tokenized_dataset(40), 16, SEQ_LEN, shuffle=False))
    assert [b[1].shape[0] for b in batches] == [16, 16, 8]
    assert all(set(x) == set(ENCODER_INPUTS) and x["input_word_ids"].shape[1] == SEQ_LEN
               for x, _ in batches)


def test_schedule_warms_up_then_decays_linearly():
    hparams = BertHParams(learning_rate=1e-3, end_learning_rate=1e-4)
    schedule = bert.learning_rate_schedule(hparams, total_steps=100)
    lr = lambda step: float(schedule(step))  # noqa: E731
    assert lr(0) == 0.0
    assert lr(5) == pytest.approx(5e-4)
    assert lr(10) == pytest.approx(1e-4 + 9e-4 * 0.9)
    assert lr(100) == pytest.approx(1e-4) and lr(150) == pytest.approx(1e-4)
    assert lr(40) > lr(60)
    no_warmup = bert.learning_rate_schedule(BertHParams(learning_rate=3e-5, warmup_fraction=0.0), 10)
    assert float(no_warmup(0)) == pytest.approx(3e-5)
    with pytest.raises(ConfigError, match="encoder's default"):
        bert.learning_rate_schedule(BertHParams(), 10)  # 0 must be resolved first, never trained as 0
    restored = bert.WarmUp.from_config(schedule.get_config())
    assert float(restored(55)) == pytest.approx(lr(55))


def test_adamw_fine_tunes_with_bucketed_batches(hf_dir, tmp_path):
    keras.utils.set_random_seed(0)
    hparams = BertHParams(learning_rate=1e-2, batch_size=16, epochs=5)
    model = bert.build_bert_classifier(BertModelOptions(encoder=hf_dir, seq_len=SEQ_LEN), 2)
    train = bert.bucketed_batches(tokenized_dataset(96, seed=1), hparams.batch_size, SEQ_LEN,
                                  True, 0)
    steps = bert.steps_per_epoch(96, hparams.batch_size) * hparams.epochs
    optimizer = bert.make_optimizer(hparams, steps)
    assert optimizer.global_clipnorm == 1.0 and optimizer.epsilon == 1e-6
    bert.compile_classifier(model, optimizer)
    decayed = {v.name: optimizer._use_weight_decay(v) for v in model.trainable_variables}
    assert not any(decayed[k] for k in decayed if "LayerNorm" in k or k.endswith("bias:0"))
    assert decayed["encoder/layer_0/query/kernel:0"] and decayed["output/kernel:0"]
    history = model.fit(train, epochs=hparams.epochs, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    test_x, test_y = tokenized_examples(64, seed=2)
    accuracy = np.mean(model.predict({k: test_x[k] for k in ENCODER_INPUTS}, verbose=0)
                       .argmax(1) == test_y)
    assert accuracy >= 0.9, accuracy
    # train.py checkpoints model and optimizer together.
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    checkpoint.restore(checkpoint.save(str(tmp_path / "ckpt"))).assert_consumed()


def test_lamb_step_matches_the_formula():
    lr, wd, b1, b2, eps = 0.1, 0.01, 0.9, 0.999, 1e-6
    optimizer = bert.LAMB(lr, weight_decay_rate=wd, epsilon=eps,
                          exclude_from_weight_decay=bert.NO_WEIGHT_DECAY)
    kernel = tf.Variable([[1.0, -2.0], [0.5, 3.0]], name="dense/kernel")
    bias = tf.Variable([0.5, -0.5], name="dense/bias")
    g_kernel = np.array([[0.1, 0.2], [-0.3, 0.4]], np.float32)
    g_bias = np.array([0.2, -0.1], np.float32)
    w0, b0 = kernel.numpy(), bias.numpy()
    optimizer.apply_gradients([(tf.constant(g_kernel), kernel), (tf.constant(g_bias), bias)])

    def adam_direction(g):
        m_hat = (1 - b1) * g / (1 - b1)
        v_hat = (1 - b2) * g * g / (1 - b2)
        return m_hat / (np.sqrt(v_hat) + eps)

    update = adam_direction(g_kernel) + wd * w0
    trust = np.linalg.norm(w0) / np.linalg.norm(update)
    np.testing.assert_allclose(kernel.numpy(), w0 - lr * trust * update, rtol=1e-5)
    # Biases: no weight decay and no layer-wise rescaling.
    np.testing.assert_allclose(bias.numpy(), b0 - lr * adam_direction(g_bias), rtol=1e-5)
    hparams = BertHParams(learning_rate=3e-5, optimizer="lamb")
    lamb = bert.make_optimizer(hparams, 10)
    assert isinstance(lamb, bert.LAMB) and lamb.global_clipnorm == 1.0
    assert bert.LAMB.from_config(lamb.get_config()).weight_decay_rate == hparams.weight_decay


def test_optimizer_choice_is_validated():
    hparams = BertHParams(learning_rate=3e-5)
    hparams.optimizer = "sgd"
    with pytest.raises(ConfigError):
        bert.make_optimizer(hparams, 10)
    assert class_weight_map(None, ["a", "b"]) is None
    assert class_weight_map({"b": 2.0}, ["a", "b"]) == {0: 1.0, 1: 2.0}
    with pytest.raises(ConfigError, match="c"):
        class_weight_map({"c": 1.0}, ["a", "b"])


def test_weights_h5_round_trip_for_every_encoder_format(hf_dir, tmp_path):
    """model_io rebuilds a classifier from model.json and loads weights.h5 into it."""
    from components import model_io
    features, _ = tokenized_examples(4)
    x = {k: features[k] for k in ENCODER_INPUTS}
    encoders = {"hf": ("hf", hf_dir),
                "savedmodel": ("savedmodel", make_tiny_savedmodel_encoder(tmp_path / "sm")),
                "tf1": ("hub_tf1", make_tiny_tf1_hub_module(tmp_path / "tf1")),
                "tf1_reference_variables": ("hub_tf1", make_tiny_tf1_hub_module(
                    tmp_path / "tf1ref", resource_variables=False))}
    for label, (kind, encoder) in encoders.items():
        spec = resolve_encoder(str(encoder))
        assert spec.kind == kind, label
        options = BertModelOptions(encoder=str(encoder), seq_len=SEQ_LEN)
        model = bert.build_bert_classifier(options, 2, encoder_spec=spec)
        before = model(x).numpy()
        for v in model.trainable_variables:  # move away from the pretrained values
            v.assign(v + 0.01)
        moved = model(x).numpy()
        assert np.abs(moved - before).max() > 1e-4, label
        folder = str(tmp_path / f"model_{label}")
        model_io.save_trained(folder, model, "bert", options, ["a", "b"], encoder=spec.to_dict())
        rebuilt, info = model_io.load_trained(folder)
        assert info["encoder"]["kind"] == spec.kind
        np.testing.assert_allclose(rebuilt(x).numpy(), moved, atol=1e-6, err_msg=label)


def test_tf1_module_fine_tunes_and_checkpoints(tmp_path):
    """The TF1 layer under the real optimizer: encoder weights move, LayerNorm and biases are
    excluded from weight decay by their TF1 names, and a checkpoint restores everything."""
    keras.utils.set_random_seed(0)
    module = make_tiny_tf1_hub_module(tmp_path / "tf1", seed=7)
    hparams = BertHParams(learning_rate=1e-2, batch_size=16, epochs=5)
    model = bert.build_bert_classifier(BertModelOptions(encoder=str(module), seq_len=SEQ_LEN), 2)
    train = bert.bucketed_batches(tokenized_dataset(96, seed=1), hparams.batch_size, SEQ_LEN,
                                  True, 0)
    optimizer = bert.make_optimizer(hparams, bert.steps_per_epoch(96, 16) * hparams.epochs)
    bert.compile_classifier(model, optimizer)
    decayed = {v.name: optimizer._use_weight_decay(v) for v in model.trainable_variables}
    assert decayed["encoder/bert/encoder/layer_0/attention/self/query/kernel:0"]
    assert not decayed["encoder/bert/encoder/layer_0/attention/output/LayerNorm/gamma:0"]
    assert not decayed["encoder/bert/pooler/dense/bias:0"]
    table = model.get_layer("encoder").weights[0]
    start = table.numpy().copy()
    history = model.fit(train, epochs=hparams.epochs, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.abs(table.numpy() - start).max() > 0
    test_x, test_y = tokenized_examples(64, seed=2)
    accuracy = np.mean(model.predict({k: test_x[k] for k in ENCODER_INPUTS}, verbose=0)
                       .argmax(1) == test_y)
    assert accuracy >= 0.9, accuracy
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    checkpoint.restore(checkpoint.save(str(tmp_path / "ckpt"))).assert_consumed()


def test_converted_classifier_converts_to_tflite_builtins_only(hf_dir):
    from ai_edge_litert.interpreter import Interpreter
    model = bert.build_bert_classifier(
        BertModelOptions(encoder=hf_dir, seq_len=SEQ_LEN, pooling="mean"), 2)
    specs = [tf.TensorSpec([1, SEQ_LEN], tf.int32, name=name) for name in ENCODER_INPUTS]
    serve = tf.function(lambda *args: model(dict(zip(ENCODER_INPUTS, args)), training=False))
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function(*specs)], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "GELU" in ops and not any(op.startswith("Flex") for op in ops)
    features, _ = tokenized_examples(1)
    for detail in interpreter.get_input_details():
        name = next(n for n in ENCODER_INPUTS if n in detail["name"])
        interpreter.set_tensor(detail["index"], features[name])
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = model({k: features[k] for k in ENCODER_INPUTS}).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_learning_rate_zero_takes_the_encoders_tuned_default(hf_dir):
    from components import architectures
    from components.encoders import MODEL_MAKER_BERT_LEARNING_RATE
    spec = architectures.get("bert")

    def resolve(hparams, encoder):
        info = {"encoder": resolve_encoder(encoder).to_dict()}
        return spec.resolve_hparams(hparams, BertModelOptions(encoder=encoder), info, {}, 10)

    assert BertHParams().learning_rate == 0.0
    other = resolve(BertHParams(), str(hf_dir))
    assert other.hparams.learning_rate == MODEL_MAKER_BERT_LEARNING_RATE == 3e-5
    assert other.picked == {"learning_rate": 3e-5, "epochs": 30}
    minilm = resolve(BertHParams(epochs=1), "minilm-l6")
    assert minilm.hparams.learning_rate == 5e-5 and minilm.hparams.epochs == 1
    given = BertHParams(learning_rate=1e-4, epochs=2)
    assert resolve(given, "minilm-l6").hparams is given


def test_epochs_zero_gives_small_data_enough_steps():
    from components.architectures.bert import default_epochs
    assert BertHParams().epochs == 0
    # 450 rows at batch 48 are 10 steps an epoch: 30 epochs; 1,800 rows (38 steps): 8 epochs.
    assert default_epochs(10) == 30 and default_epochs(38) == 8
    assert default_epochs(100) == default_epochs(1404) == 3  # SST-2 keeps Model Maker's 3
    assert default_epochs(1) == 30 and default_epochs(0) == 30
    with pytest.raises(ConfigError, match="epochs must be 0"):
        BertHParams(epochs=-1)
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        AverageWordEmbeddingHParams(epochs=0)
