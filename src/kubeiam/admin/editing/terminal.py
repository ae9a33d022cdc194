"""Mapping text made safe to print on a terminal (pure)."""

from __future__ import annotations


def terminal_text(text: str) -> str:
    """``text`` safe to print: every character that is not printable (control characters, a
    newline inside a value, bidi overrides, zero-width characters) written as its escape, so what
    a terminal shows is what the mapping holds."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )
