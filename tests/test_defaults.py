"""The rules behind defaults that depend on the data (unit tests of the rules, not training runs)."""

import pytest

from components import architectures
from components import tokenizers as tok
from components.architectures.awe import MAX_RATE, MIN_RATE, default_learning_rate
from components.options import AverageWordEmbeddingHParams, AverageWordEmbeddingModelOptions


def test_awe_learning_rate_shrinks_with_the_steps_of_the_run():
    assert default_learning_rate(150) == pytest.approx(1 / 150)     # 450 rows, 10 epochs of 32
    assert default_learning_rate(282) == pytest.approx(1 / 282)     # the guide: 3,000 rows, 3 epochs
    assert default_learning_rate(21_050) == MIN_RATE == 1e-4        # SST-2: Model Maker-sized data
    assert default_learning_rate(5) == MAX_RATE and default_learning_rate(0) == MAX_RATE


def test_awe_spec_resolves_only_a_zero_rate():
    spec = architectures.get("awe")
    options = AverageWordEmbeddingModelOptions()
    resolved = spec.resolve_hparams(AverageWordEmbeddingHParams(epochs=3), options, {}, {}, 94)
    assert resolved.hparams.learning_rate == pytest.approx(1 / 282)
    assert resolved.picked == {"learning_rate": resolved.hparams.learning_rate}
    given = AverageWordEmbeddingHParams(learning_rate=0.001)
    assert spec.resolve_hparams(given, options, {}, {}, 94).hparams is given


def test_fitted_seq_len_holds_the_longest_text_in_steps_of_eight():
    assert tok.fitted_seq_len(52, 1, 256) == 56      # SST-2 train: 52 words + <START>
    assert tok.fitted_seq_len(7, 1, 256) == 8
    assert tok.fitted_seq_len(0, 1, 256) == 8        # nothing but <START>
    assert tok.fitted_seq_len(1000, 1, 256) == 256   # longer texts are cut at the cap
    assert tok.fitted_seq_len(61, 2, 128) == 64      # BERT: [CLS] + 61 pieces + [SEP]
    assert tok.fitted_seq_len(1, 2, 3) == 3          # never below the cap's floor of 3


def test_bucketed_steps_count_one_partial_batch_per_bucket():
    from components.bert import bucketed_steps
    # lengths 5 (bucket <=8) x 9 and 30 (bucket <=32) x 3, batch 4: ceil(9/4) + ceil(3/4) = 4
    # batches, where rows / batch size would say 3 (and progress lines would count past it)
    assert bucketed_steps({5: 9, 30: 3}, 4, 128) == 4
    assert bucketed_steps({5: 12}, 4, 128) == 3


def test_student_rate_starts_a_linear_decay_fitted_to_the_run():
    from components.architectures import distilled
    from components.errors import ConfigError
    from components.options import DistilledHParams, DistilledModelOptions

    spec = architectures.get("distilled")
    assert spec.default_learning_rate(60_000) == pytest.approx(1e-3)   # about SST-2's transfer set
    assert spec.default_learning_rate(1_770) == distilled.MAX_RATE     # 1,800 rows, 20 copies, 3 epochs
    decaying = spec.optimizer(DistilledHParams(learning_rate=1e-3), 1_000)
    assert float(decaying.learning_rate) == pytest.approx(1e-3)
    schedule = decaying._learning_rate
    assert float(schedule(500)) == pytest.approx(5e-4) and float(schedule(1_000)) == 0.0
    constant = spec.optimizer(DistilledHParams(learning_rate=1e-3, learning_rate_schedule="constant"), 1_000)
    assert not callable(constant._learning_rate)
    with pytest.raises(ConfigError, match="learning_rate_schedule"):
        DistilledHParams(learning_rate_schedule="cosine")
    with pytest.raises(ConfigError, match="embedding_init"):
        DistilledModelOptions(embedding_init="glove")
