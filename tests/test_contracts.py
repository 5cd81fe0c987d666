"""docs/contracts.md against the code: each section's files are constants of the module it names as
their owner (or of the label/vocabulary owners that module writes through)."""

import importlib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE = re.compile(r"^[\w.<>\-/]+\.(?:json|jsonl|txt|tflite|h5|tfrecord|md|html|npz|npy)$|^\w+/$")
DELEGATES = ("components.labels", "components.vocabulary")


def _sections():
    text = open(os.path.join(ROOT, "docs", "contracts.md"), encoding="utf-8").read()
    for block in re.split(r"\n## ", text)[1:]:
        heading, body = block.split("\n", 1)
        owner = re.search(r"`(components/[\w/]+)\.py`\)", heading)
        if owner:
            yield heading, owner.group(1).replace("/", "."), re.findall(r"`([^`]+)`", body)


def _strings(module):
    values = set()
    for value in vars(module).values():
        if isinstance(value, str):
            values.add(value)
        elif isinstance(value, (tuple, list)):
            values.update(v for v in value if isinstance(v, str))
            values.update(w for v in value if isinstance(v, tuple) for w in v if isinstance(w, str))
    return values


def _known(owner: str):
    module = importlib.import_module(owner)
    known = _strings(module)
    for name in DELEGATES:
        if any(getattr(v, "__name__", None) == name for v in vars(module).values()) or owner == name:
            known |= _strings(importlib.import_module(name))
    return known


def test_every_file_of_a_contract_is_a_constant_of_its_owner():
    checked = 0
    for heading, owner, names in _sections():
        known = _known(owner)
        for name in names:
            if not FILE.match(name):
                continue
            base = name.rstrip("/").rsplit("/", 1)[-1]
            pattern = re.sub(r"N{3,}|M{3,}", "*", base)
            assert base in known or pattern in known, f"{heading}: {name} is not a constant of {owner}"
            checked += 1
    assert checked >= 30  # the sections were found and read


def test_the_checker_notices_a_file_its_owner_does_not_define():
    assert "profile.json" in _known("components.profile")
    assert "summary.json" not in _known("components.tokenized")
