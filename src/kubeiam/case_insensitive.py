"""Keys written in any case: look-up, set and fold of mapping keys like ``roleARN`` (pure).

Inside mapping entries the reference, aws-auth and eksctl accept ``roleARN``, ``rolearn`` and
``RoleArn`` alike (protocol.md section 4), and the server config reads its keys the same way. These
helpers are the one place that rule is spelled out; ``name`` is always given in lower case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_V = TypeVar("_V")


def key_in(doc: Mapping[Any, Any], name: str) -> Any:
    """The first key of ``doc`` that is ``name`` in any case, or None."""
    for key in doc:
        if str(key).lower() == name:
            return key
    return None


def get_any_case(doc: Mapping[Any, Any], name: str) -> Any:
    """The value under ``name`` in any case (the first such key), or None."""
    key = key_in(doc, name)
    return None if key is None else doc[key]


def set_any_case(doc: Any, name: str, value: Any) -> None:
    """Set the value under ``name``, keeping the spelling the document already uses."""
    key = key_in(doc, name)
    doc[name if key is None else key] = value


def fold_keys(
    doc: Mapping[Any, _V],
    twice: Callable[[Any], Exception],
    *,
    fold: Callable[[Any], str] = lambda key: str(key).lower(),
) -> dict[str, _V]:
    """``doc`` with its keys in lower case; a key given twice (in any case) raises ``twice(key)``.

    ``fold`` turns one key into its lower-case form (and may raise for a key it refuses).
    """
    out: dict[str, _V] = {}
    for key, value in doc.items():
        low = fold(key)
        if low in out:
            raise twice(key)
        out[low] = value
    return out
