"""Model Maker's `quantization` module, for `from components import text_classifier, quantization`.

`QuantizationConfig` is the pipeline's own (`components.options`), so a config built in a notebook
means the same thing as the pipeline's `quantization` parameter. The one difference from the
options class: `for_int8(representative_data)` keeps the dataset it is given, as Model Maker
does, and `TextClassifier.export_model` calibrates on it (without one, on the training data).
"""

from __future__ import annotations

from components import options as _options


class QuantizationConfig(_options.QuantizationConfig):
    """`for_dynamic()`, `for_float16()`, `for_int8(representative_data)`, as in Model Maker."""

    representative_data = None  # not a dataclass field: configs still round-trip through JSON

    @classmethod
    def for_int8(cls, representative_data=None, representative_examples: int = 200) -> "QuantizationConfig":
        config = cls(mode="int8", representative_examples=representative_examples)
        config.representative_data = representative_data
        return config


__all__ = ["QuantizationConfig"]
