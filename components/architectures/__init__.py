"""The architecture registry: one spec per model architecture, looked up by name.

Adding an architecture is one module beside `awe.py` and `bert.py` (a subclass of
`base.ArchitectureSpec`, exposed as `SPEC`) plus one line in `_BUILT_IN`; docs/architectures.md
walks through it. Nothing outside this package branches on an architecture's name.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Sequence

from components.architectures.base import ArchitectureSpec, Resolved, VocabularyPlan
from components.errors import ConfigError

__all__ = ["ArchitectureSpec", "Resolved", "VocabularyPlan", "get", "names", "register",
           "parse_architectures", "with_requirements"]

# name -> module holding `SPEC`; imported on first use (the modules import TensorFlow).
_BUILT_IN: Dict[str, str] = {
    "awe": "components.architectures.awe",
    "bert": "components.architectures.bert",
    "distilled": "components.architectures.distilled",
}
_LOADED: Dict[str, ArchitectureSpec] = {}


def names() -> List[str]:
    """Every architecture a pipeline can train, built-in first."""
    return list(_BUILT_IN) + [name for name in _LOADED if name not in _BUILT_IN]


def get(name: str) -> ArchitectureSpec:
    key = (name or "").strip().lower()
    if key not in _LOADED:
        if key not in _BUILT_IN:
            raise ConfigError(f"unknown model architecture {name!r}; choose from {', '.join(names())}")
        spec = importlib.import_module(_BUILT_IN[key]).SPEC
        if spec.name != key:
            raise ConfigError(f"{_BUILT_IN[key]} registers {spec.name!r}, expected {key!r}")
        _LOADED[key] = spec
    return _LOADED[key]


def register(spec: ArchitectureSpec) -> ArchitectureSpec:
    """Adds an architecture defined outside this package (a plug-in, or a test's)."""
    if not isinstance(spec, ArchitectureSpec) or not spec.name:
        raise ConfigError("register() takes an ArchitectureSpec instance with a name")
    if spec.name in _BUILT_IN:
        raise ConfigError(f"{spec.name!r} is a built-in architecture")
    _LOADED[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    if name in _BUILT_IN:
        raise ConfigError(f"{name!r} is a built-in architecture")
    _LOADED.pop(name, None)


def parse_architectures(value: Sequence[str] | str) -> List[str]:
    """'awe,bert' or ['awe'] -> validated, de-duplicated list in the given order."""
    items = value.split(",") if isinstance(value, str) else list(value)
    known = names()
    result: List[str] = []
    for item in (str(i).strip().lower() for i in items):
        if not item:
            continue
        if item not in known:
            raise ConfigError(f"unknown model architecture {item!r}; choose from {', '.join(known)}")
        if item not in result:
            result.append(item)
    if not result:
        raise ConfigError(f"at least one model architecture ({', '.join(known)}) must be selected")
    return result


def with_requirements(selected: Sequence[str]) -> List[str]:
    """`selected` plus the architectures they need (a teacher), each before what needs it."""
    ordered: List[str] = []

    def visit(name: str, chain: tuple) -> None:
        if name in chain:
            raise ConfigError(f"architectures require each other in a loop: {' -> '.join(chain + (name,))}")
        for needed in get(name).requires:
            visit(needed, chain + (name,))
        if name not in ordered:
            ordered.append(name)

    for name in selected:
        visit(name, ())
    return ordered
