"""How a failing pipeline step hands its own error message back to the local runner.

kfp's local runner only reports that a task failed; the step's message is somewhere in the log
above. `pipelines.local.run_local` names a file in `TEXTCLF_STEP_ERROR_FILE` for the run. Every
step runs in a subprocess whose component body imports this package, which installs an exception
hook there: an error that ends the step is written to that file (the message alone for our own
`TextClfError`s), and `textclf run` ends with it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, Optional

ERROR_FILE_ENV = "TEXTCLF_STEP_ERROR_FILE"


def _step_name() -> str:
    argv = sys.argv
    for flag in ("--function_to_execute",):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return argv[argv.index(flag) + 1].replace("_", "-")
    return ""


def record(error: BaseException, path: Optional[str] = None) -> None:
    """Writes the error of the step running in this process to the file the runner named."""
    from components.errors import TextClfError
    path = path or os.environ.get(ERROR_FILE_ENV)
    if not path:
        return
    message = str(error) if isinstance(error, TextClfError) else f"{type(error).__name__}: {error}"
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"step": _step_name(), "type": type(error).__name__, "message": message}, f)


def install() -> None:
    """Adds the hook once per process, only where the runner asked for it."""
    if not os.environ.get(ERROR_FILE_ENV) or getattr(sys.excepthook, "_textclf", False):
        return
    previous = sys.excepthook

    def hook(kind, error, traceback):
        try:
            record(error)
        except OSError:
            pass  # the traceback below still tells
        previous(kind, error, traceback)

    hook._textclf = True
    sys.excepthook = hook


def read(path: str) -> Optional[Dict[str, str]]:
    """The recorded error, or None when no step recorded one."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
