"""Exception types raised by the library.

Each one carries enough context (file, line, column, value) for a user to fix the input without
reading a traceback.
"""


class TextClfError(Exception):
    """Base class for every error the package raises on purpose."""


class DataSourceError(TextClfError):
    """A data source (local path, gs:// object, URL, zip) could not be opened or read."""


class UnsafeArchiveError(DataSourceError):
    """A zip archive holds an entry that would be written outside its extraction folder."""


class InputFormatError(TextClfError):
    """The delimited input is malformed: a row, a column or a value is not what was promised.

    The message names the file, the line and, where one applies, the column.
    """

    def __init__(self, message, *, path=None, line=None, column=None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.line = line
        self.column = column


class LabelError(TextClfError):
    """Labels do not support training: too few classes, or a class unseen in training."""


class VocabularyError(TextClfError):
    """A vocabulary file is missing, empty or malformed."""


class EncoderError(TextClfError):
    """A BERT encoder could not be resolved, loaded or converted."""


class ConfigError(TextClfError):
    """An option or hyperparameter has a value that cannot work."""


class QualityGateError(TextClfError):
    """A model missed a configured quality bar (accuracy, or accuracy lost to quantization)."""


class ModelFormatError(TextClfError):
    """A model file or folder is not what the step expects (not a .tflite, no metadata, inputs or
    outputs of another shape)."""


class RunnerError(TextClfError):
    """A Beam runner finished without running the whole pipeline: an output is missing or short."""


class DeviceError(TextClfError):
    """A step was given an accelerator that TensorFlow cannot see (no CUDA in the image, no driver)."""


class InjectedFault(TextClfError):
    """Raised on purpose by the training loop's fault-injection test hook (`TEXTCLF_FAIL_AFTER_STEPS`)."""
