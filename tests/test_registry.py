"""The architecture registry: a third architecture defined here, in the tests only, goes through
preprocessing, training, evaluation and export by registering its spec and nothing else."""

import dataclasses
import os
import re
from typing import Dict, Optional

import pytest

from components import architectures, split_io
from components import tokenizers as tok
from components.errors import ConfigError
from components.options import _JsonOptions
from tests.conftest import sentiment_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class MaxPoolOptions(_JsonOptions):
    seq_len: int = 0
    vocab_size: int = 500
    do_lower_case: bool = True
    wordvec_dim: int = 8


@dataclasses.dataclass
class MaxPoolHParams(_JsonOptions):
    epochs: int = 12
    batch_size: int = 8
    learning_rate: float = 0.0
    steps_per_epoch: Optional[int] = None
    shuffle: bool = True
    class_weights: Optional[Dict[str, float]] = None
    seed: int = 0


class MaxPoolSpec(architectures.ArchitectureSpec):
    """Token embeddings, max-pooled: nothing like AWE or BERT, and still on the regex contract."""

    name = "maxpool"
    title = "Max-pooled embeddings"
    api_name = "MAX_POOL_CLASSIFIER"
    options_class = MaxPoolOptions
    hparams_class = MaxPoolHParams

    def vocabulary_plan(self, options):
        return architectures.VocabularyPlan(recipe=tok.TokenizerRecipe(tok.REGEX, options.do_lower_case),
                                            seq_len=options.seq_len, max_seq_len=64, max_size=options.vocab_size)

    def model_info(self, options, vocab_size):
        return {"vocab_rows": vocab_size}

    def build_model(self, options, num_classes, info):
        import tensorflow as tf
        import tf_keras as keras
        ids = keras.Input((options.seq_len,), dtype=tf.int32, name=tok.AWE_FEATURE)
        vectors = keras.layers.Embedding(info["vocab_rows"], options.wordvec_dim, name="emb")(ids)
        pooled = keras.layers.GlobalMaxPooling1D()(vectors)
        return keras.Model(ids, keras.layers.Dense(num_classes, activation="softmax")(pooled))

    def resolve_hparams(self, hparams, options, info, meta, steps_per_epoch):
        if hparams.learning_rate:
            return architectures.Resolved(hparams)
        return architectures.Resolved(dataclasses.replace(hparams, learning_rate=0.02), {"learning_rate": 0.02})

    def train_batches(self, dataset, meta, options, hparams, shuffle):
        dataset = dataset.map(lambda features, label: (features[tok.AWE_FEATURE], label))
        if shuffle:
            dataset = dataset.shuffle(1000, seed=hparams.seed)
        return dataset.batch(hparams.batch_size)

    def eval_batches(self, dataset, meta, options, batch_size):
        return dataset.map(lambda features, label: (features[tok.AWE_FEATURE], label)).batch(batch_size)

    def optimizer(self, hparams, total_steps):
        import tf_keras as keras
        return keras.optimizers.Adam(hparams.learning_rate)

    def write_metadata(self, tflite_bytes, vocabulary, label_names, info):
        from components import metadata as md
        pairs = [(t, i) for i, t in enumerate(vocabulary.tokens)]
        return md.write_regex_tokenizer_metadata(tflite_bytes, pairs, label_names,
                                                 producer={"architecture": self.name})


@pytest.fixture
def maxpool():
    spec = architectures.register(MaxPoolSpec())
    yield spec
    architectures.unregister(spec.name)


def test_a_registered_architecture_runs_through_every_step(maxpool, tmp_path):
    from tflite_fixtures import mediapipe_classifier, mediapipe_scores

    from components.evaluate import evaluate
    from components.export import export_model
    from components.options import QuantizationConfig
    from components.preprocess import preprocess
    from components.tflite_quantize import quantize_model
    from components.train import train

    assert "maxpool" in architectures.names() and architectures.parse_architectures("maxpool,awe") == [
        "maxpool", "awe"]
    splits = {}
    for name, rows in (("train", sentiment_rows(40, seed=1)), ("validation", sentiment_rows(10, seed=2)),
                       ("test", sentiment_rows(10, seed=3))):
        splits[name] = str(tmp_path / "splits" / name)
        split_io.write_split(splits[name], rows, ["0", "1"])
    tokens = {name: str(tmp_path / "tokens" / name) for name in splits}
    vocab = str(tmp_path / "vocab")

    summary = preprocess("maxpool", splits, tokens, vocab, {"vocab_size": 100})
    assert summary["architecture"] == "maxpool" and summary["seq_len_fitted"]
    assert summary["seq_len"] == 8  # five words + <START>, rounded up to 8
    trained = train("maxpool", tokens["train"], tokens["validation"], vocab, {"vocab_size": 100}, {},
                    str(tmp_path / "model"))
    assert trained["picked"] == {"learning_rate": 0.02, "seq_len": 8}
    metrics = evaluate(str(tmp_path / "model"), tokens["test"])
    assert metrics["architecture"] == "maxpool" and metrics["accuracy"] >= 0.9, metrics["accuracy"]
    exported = export_model(str(tmp_path / "model"), vocab, str(tmp_path / "export"))
    assert exported["architecture"] == "maxpool" and exported["seq_len"] == 8
    quantize_model(str(tmp_path / "export"), QuantizationConfig.for_dynamic(), str(tmp_path / "quantized"))
    with mediapipe_classifier(exported["tflite"]) as classifier:
        good, bad = mediapipe_scores(classifier, "a wonderful superb film"), mediapipe_scores(
            classifier, "an awful tedious plot")
    assert good["1"] > good["0"] and bad["0"] > bad["1"]
    assert architectures.get("maxpool").describe({}) == "Max-pooled embeddings"


def test_the_pipeline_gets_a_branch_for_a_registered_architecture(maxpool, tmp_path):
    import json

    import yaml

    from pipelines.compile_pipeline import compile_pipeline
    path = compile_pipeline(str(tmp_path / "p.yaml"), models=["maxpool"])
    spec = yaml.safe_load(open(path))
    assert {"maxpool_model_options", "maxpool_hparams"} <= set(spec["root"]["inputDefinitions"]["parameters"])
    assert "train-maxpool" in json.dumps(spec["root"]["dag"]["tasks"])


def test_registry_refuses_what_it_cannot_serve():
    with pytest.raises(ConfigError, match="unknown model architecture 'cnn'"):
        architectures.get("cnn")
    with pytest.raises(ConfigError, match="built-in"):
        architectures.register(type("Fake", (MaxPoolSpec,), {"name": "awe"})())
    with pytest.raises(ConfigError, match="at least one"):
        architectures.parse_architectures(" , ")


# A comparison of an architecture-ish value (arch, architecture, info["architecture"], an enum's
# .value) with a name or a tuple of names, or an isinstance check on an options class.
_NAMES = r"""(?:["'](?:awe|bert|distilled)["']|\b(?:AWE|BERT|DISTILLED)\b)"""
_BRANCH = re.compile(r"""(?:arch\w*|\["architecture"\]|\.value)\s*(?:==|!=|\bin\b|\bnot in\b)\s*[(\[]?\s*"""
                     + _NAMES + "|" + _NAMES + r"""\s*(?:==|!=)\s*\w*arch"""
                     + r"""|isinstance\([^)]*(?:ModelOptions|HParams)\b""")


def test_nothing_outside_the_registry_branches_on_an_architecture_name():
    offenders = []
    for folder in ("components", "pipelines"):
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            if os.path.join("components", "architectures") in base:
                continue
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(base, name)
                for number, line in enumerate(open(path, encoding="utf-8"), start=1):
                    if _BRANCH.search(line):
                        offenders.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_checker_finds_a_branch():
    assert _BRANCH.search('    if architecture == "awe":')
    assert _BRANCH.search("if arch in ('bert', 'awe')")
    assert _BRANCH.search("assert isinstance(model_options, BertModelOptions)")
    assert _BRANCH.search('if info["architecture"] != "bert":')
    assert _BRANCH.search("if architecture == AWE else BertModelOptions")
    assert not _BRANCH.search('model_options_parameter("awe")')
    assert not _BRANCH.search('if model_type != "bert":')  # a Hugging Face config's field
