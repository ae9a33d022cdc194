"""The unified diff an edit shows on ``--dry-run`` (pure)."""

from __future__ import annotations

import difflib
import re

#: Lines of context around each change in a diff (difflib's and git's default).
_DIFF_CONTEXT = 3
_HUNK = re.compile(r"@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def unified_diff(old: str, new: str, target: str) -> str:
    """The unified diff of two texts. The common head and tail are cut off before difflib runs
    (an edit changes a few lines of a file that may hold 30,000): difflib on the whole of two
    such texts takes most of a second, on the middle part milliseconds."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    skip = max(0, head - _DIFF_CONTEXT)
    keep_tail = max(0, tail - _DIFF_CONTEXT)
    lines = difflib.unified_diff(
        a[skip : len(a) - keep_tail],
        b[skip : len(b) - keep_tail],
        fromfile=f"{target} (current)",
        tofile=f"{target} (after)",
        n=_DIFF_CONTEXT,
    )

    def shift(match: re.Match[str]) -> str:
        old_start, old_len, new_start, new_len = match.groups()
        return f"@@ -{int(old_start) + skip}{old_len} +{int(new_start) + skip}{new_len} @@"

    out = []
    for line in lines:
        if line.startswith("@@"):
            line = _HUNK.sub(shift, line, count=1)
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)
