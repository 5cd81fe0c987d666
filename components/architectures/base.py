"""What an architecture spec answers, with the answers most architectures share.

A spec is the only place that knows an architecture: which option classes it takes, how its
vocabulary is made and its texts tokenized, how its model is built, batched and optimized, what
its training defaults resolve to, how its export is described to MediaPipe and how it is named in
the report. Steps ask the spec (`components.architectures.get(name)`) instead of branching on the
name; capabilities the steps need to know about are attributes (`counts_vocabulary`, `requires`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from components.errors import ConfigError
from components.tokenizers import TokenizerRecipe


@dataclasses.dataclass(frozen=True)
class VocabularyPlan:
    """How preprocessing gets a vocabulary and tokenizes with it.

    Either `tokens` is given (an encoder's own vocabulary, `raw` its file bytes, copied as they
    are), or the training split is counted: the `max_size` most frequent tokens seen at least
    `min_count` times. `seq_len` 0 fits the input length to the longest text of all splits
    given, up to `max_seq_len` (`tokenizers.fitted_seq_len`).
    """

    recipe: TokenizerRecipe
    seq_len: int
    max_seq_len: int
    tokens: Optional[Tuple[str, ...]] = None
    raw: Optional[bytes] = None
    max_size: int = 0
    min_count: int = 1
    # A counted vocabulary is also cut where its embedding rows (`row_bytes` each) and packed
    # lines (with device case spellings when `case_variants`) would pass `byte_budget`; 0: no cut.
    byte_budget: int = 0
    row_bytes: int = 0
    case_variants: bool = False

    @property
    def counts_vocabulary(self) -> bool:
        return self.tokens is None

    def select(self, counts: Mapping[str, int]) -> List[str]:
        """The counted vocabulary: the most frequent tokens, within `max_size` and the byte budget."""
        from components.tokenizers import fit_to_bytes
        tokens = self.recipe.counted_vocabulary(counts, self.max_size, self.min_count)
        if self.byte_budget:
            tokens = fit_to_bytes(tokens, self.byte_budget, self.row_bytes, self.case_variants)
        return tokens


@dataclasses.dataclass
class Resolved:
    """Training settings after the spec's defaults were applied, and what was picked (for the
    report: "every value the defaults picked")."""

    hparams: Any
    picked: Dict[str, Any] = dataclasses.field(default_factory=dict)


class ArchitectureSpec(abc.ABC):
    """Base class of every architecture spec; subclasses set the class attributes and override
    what differs."""

    name: str = ""
    title: str = ""                 # the report's row name
    api_name: str = ""              # the Model Maker-compatible API's SupportedModels member
    options_class: type = None      # e.g. AverageWordEmbeddingModelOptions
    hparams_class: type = None      # e.g. AverageWordEmbeddingHParams
    requires: Tuple[str, ...] = ()  # architectures whose trained model this one needs (a teacher)
    # Whether training reads a teacher-scored transfer set (components.transfer) instead of the
    # training split: the pipeline then scores one with the model of `requires[0]`.
    learns_from_teacher: bool = False
    steps_per_execution: int = 1    # Keras steps per graph call (small models: several)

    # -- options -------------------------------------------------------------------------------

    def options(self, values=None):
        """Model options from None (defaults), a dict (pipeline parameter) or an instance."""
        return self._coerce(values, self.options_class, "model options")

    def hparams(self, values=None):
        return self._coerce(values, self.hparams_class, "hyperparameters")

    def _coerce(self, values, cls, what: str):
        if values is None:
            return cls()
        if isinstance(values, Mapping):
            return cls.from_dict(dict(values))
        if not isinstance(values, cls):
            raise ConfigError(f"the {self.name} architecture takes {what} of type {cls.__name__}, "
                              f"got {type(values).__name__}")
        return values

    # -- vocabulary and tokenization -------------------------------------------------------------

    @abc.abstractmethod
    def vocabulary_plan(self, options) -> VocabularyPlan:
        """How preprocessing makes this architecture's vocabulary and tokenizer."""

    def resolve_options(self, options, meta: Mapping[str, Any]):
        """Options with what preprocessing decided from the data (e.g. `seq_len`) filled in."""
        if getattr(options, "seq_len", None) == 0:
            return dataclasses.replace(options, seq_len=int(meta["seq_len"]))
        return options

    # -- the model -------------------------------------------------------------------------------

    def model_info(self, options, vocab_size: int) -> Dict[str, Any]:
        """Extra model.json fields the builder needs to rebuild the model later."""
        return {}

    @abc.abstractmethod
    def build_model(self, options, num_classes: int, info: Mapping[str, Any]):
        """A fresh Keras model taking int32 [batch, seq] inputs named as the tokenizer's features
        and returning class probabilities [batch, num_classes]."""

    def after_vocabulary(self, vocab_dir: str, train_split_dir: str, options) -> Dict[str, Any]:
        """Preprocessing's last word, once the vocabulary folder is final: what else the model
        derives from the vocabulary and the training split (e.g. a starting embedding); returns
        what to add to the preprocessing summary."""
        return {}

    def initialize(self, model, vocab_dir: str, options) -> Dict[str, Any]:
        """Sets a freshly built model's starting weights from the vocabulary folder (a resumed run
        then restores its checkpoint over them); returns what it picked, for training.json."""
        return {}

    # -- training --------------------------------------------------------------------------------

    def resolve_hparams(self, hparams, options, info: Mapping[str, Any], meta: Mapping[str, Any],
                        steps_per_epoch: int) -> Resolved:
        """`hparams` with every "use the default" value (e.g. `learning_rate` 0) replaced."""
        return Resolved(hparams)

    @abc.abstractmethod
    def train_batches(self, dataset, meta: Mapping[str, Any], options, hparams, shuffle: bool):
        """(inputs, label) batches for `fit` from `tokenized.load_tokenized`'s examples."""

    @abc.abstractmethod
    def eval_batches(self, dataset, meta: Mapping[str, Any], options, batch_size: int):
        """Unshuffled (inputs, label) batches for scoring every example once."""

    def validation_batches(self, dataset, meta: Mapping[str, Any], options, batch_size: int):
        """What `fit` validates on each epoch: the targets `loss` takes (by default the labels)."""
        return self.eval_batches(dataset, meta, options, batch_size)

    def loss(self, hparams):
        """The training loss; by default cross-entropy against the label ids."""
        return "sparse_categorical_crossentropy"

    def metrics(self):
        return ["accuracy"]

    def steps_per_epoch(self, meta: Mapping[str, Any], hparams) -> int:
        """Batches `train_batches` yields in one epoch (what progress lines and schedules count)."""
        return hparams.steps_per_epoch or max(1, -(-int(meta["num_examples"]) // hparams.batch_size))

    @abc.abstractmethod
    def optimizer(self, hparams, total_steps: int):
        """The optimizer (with its learning-rate schedule) for `total_steps` steps."""

    # -- export ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def write_metadata(self, tflite_bytes: bytes, vocabulary, label_names: Sequence[str],
                       info: Mapping[str, Any]) -> bytes:
        """The float .tflite with the MediaPipe metadata (tokenizer, vocabulary, labels) packed."""

    def export_warnings(self, info: Mapping[str, Any], vocabulary) -> List[str]:
        return []

    def describe(self, info: Mapping[str, Any]) -> str:
        """The report's name for a trained model of this architecture."""
        return self.title
