"""Did-you-mean: the existing names closest to one that was not found (pure).

Used by the removals that refuse a name which does not exist (``kubeiam iam offboard-user``,
``delete-access-role``, ``revoke``): the message lists the few closest existing names, so a typo
is seen at once instead of being reported as a successful no-op.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How many names a message lists: enough for the likely typo, short enough for one line.
MAX_SUGGESTIONS = 3
#: difflib's similarity ratio below which a name is not offered (0.6 is difflib's default and
#: what Python's own "did you mean" uses); case is ignored, as IAM ignores it in names.
MIN_SIMILARITY = 0.6
#: A name longer than this is quoted cut short in a message.
_QUOTE = 80


def closest_names(name: str, candidates: Iterable[str]) -> list[str]:
    """Up to :data:`MAX_SUGGESTIONS` of ``candidates`` most similar to ``name``, best first
    (an exact match is never returned: it would not have been "not found")."""
    by_folded: dict[str, str] = {}
    for candidate in candidates:
        if candidate != name:
            by_folded.setdefault(candidate.casefold(), candidate)
    found = difflib.get_close_matches(
        name.casefold(), list(by_folded), n=MAX_SUGGESTIONS, cutoff=MIN_SIMILARITY
    )
    return [by_folded[f] for f in found]


def quote_name(name: str) -> str:
    """``name`` as a message shows it: plain when it is printable, else escaped; bounded."""
    short = name[:_QUOTE]
    text = short if short.isprintable() and short.strip() == short and short else repr(short)
    return text + "..." if len(name) > _QUOTE else text


def not_found_message(what: str, name: str, closest: list[str]) -> str:
    """``IAM user alcie not found (closest: alice, alicia)``."""
    suggestion = f" (closest: {', '.join(quote_name(c) for c in closest)})" if closest else ""
    return f"{what} {quote_name(name)} not found{suggestion}"
