"""A YAML block sequence held as lines of text and edited by splicing them (pure).

Both mapping editors work this way: each aws-auth ``data`` section is one block sequence, and
each ``server.mapRoles``-style section of a mapping file is one, indented under its key. An edit
cuts an entry's lines out, appends a rendered entry, or re-renders one entry; every other line
stays byte for byte (comments, quoting, blank lines, odd indentation). That is also what makes an
edit of a 10,000-entry list fast: nothing is parsed or dumped again as a whole
(``bench/bench_editor.py``).

A :class:`BlockList` also keeps the parsed value of each item (as the server's reader made it)
next to its lines, updated by the same splices, so the edited list can be validated by the
server's rules without parsing the whole text again. The tests check that the values kept equal
those of a fresh parse of the text after any sequence of edits.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class NotSplicable(Exception):
    """The text is not laid out in a way the splicer can edit safely (the caller falls back to
    a full round trip, or refuses)."""


@dataclass(frozen=True, slots=True)
class Style:
    """How a list indents: the column of its top-level dashes, and nested lists' dash offset."""

    top: int = 0
    nested_offset: int = 2


_NESTED_LIST = re.compile(r"^( *)[^\s#-][^\n]*:[ \t]*\r?\n( *)- ", re.MULTILINE)
_FIRST_DASH = re.compile(r"^( *)- ", re.MULTILINE)


def style_of(text: str, *, default: Style | None = None) -> Style:
    """The style of a list's text (its first dash and its first nested list decide)."""
    base = default or Style()
    first = _FIRST_DASH.search(text)
    top = len(first.group(1)) if first else base.top
    nested = _NESTED_LIST.search(text)
    offset = len(nested.group(2)) - len(nested.group(1)) if nested else base.nested_offset
    return Style(top, max(0, offset))


def render_entry(entry: Any, style: Style, newline: str = "\n") -> list[str]:
    """One entry (a ruamel ``CommentedMap``, or a scalar) as the lines of a list item."""
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.width = 4096
    y.indent(mapping=2, sequence=style.nested_offset + 2, offset=style.nested_offset)
    buf = io.StringIO()
    y.dump(entry, buf)
    lines = buf.getvalue().splitlines()
    pad = " " * style.top
    out = [pad + "- " + lines[0]] + [(pad + "  " + line) if line else line for line in lines[1:]]
    return [line + newline for line in out]


def render_scalar(value: Any) -> str:
    """A scalar as YAML writes it in a list (``"012345678901"`` keeps its quotes)."""
    from ruamel.yaml import YAML

    buf = io.StringIO()
    YAML(typ="rt").dump([value], buf)
    return buf.getvalue()[2:].rstrip("\n")


def load_entry(lines: Sequence[str], style: Style) -> Any:
    """The ruamel round-trip value of one item, from its lines (comments and key order kept)."""
    from ruamel.yaml import YAML

    width = style.top + 2
    body = [lines[0][width:].rstrip("\r\n")] + [
        line[width:].rstrip("\r\n") if line.strip() else "" for line in lines[1:]
    ]
    return YAML(typ="rt").load("\n".join(body) + "\n")


def is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def line_indents(lines: Sequence[str]) -> list[int]:
    """Each line's indentation, or -1 for a comment or blank line (one pass, for scans)."""
    out: list[int] = []
    append = out.append
    for line in lines:
        text = line.strip()
        append(-1 if not text or text[0] == "#" else len(line) - len(line.lstrip(" ")))
    return out


def item_starts(
    lines: Sequence[str], column: int, indents: Sequence[int] | None = None
) -> list[int]:
    """Indexes of the lines that start a top-level item of a block list whose dashes are at
    ``column``; :class:`NotSplicable` when a content line is outside the list (less indented, or
    not a dash at the list's column). ``indents``: :func:`line_indents` of ``lines``."""
    starts: list[int] = []
    if indents is None:
        indents = line_indents(lines)
    for i, line in enumerate(lines):
        indent = indents[i]
        if indent < 0:
            continue
        if indent > column:
            if not starts:
                raise NotSplicable("the list does not start with a dash")
            continue
        rest = line[indent:]
        if indent < column or not (rest.startswith("- ") or rest.rstrip("\r\n") == "-"):
            raise NotSplicable(f"line {i + 1} is not part of the list")
        starts.append(i)
    return starts


#: Parses the lines of one new or re-rendered item the way the server's reader parses the whole
#: list, and returns the item's value.
ParseItem = Callable[[str], Any]


class BlockList:
    """A block sequence's lines, the value of each item and the line each item starts on.

    ``parse_item`` reads an item's own lines (with the list's indentation) as the server's reader
    would: every value kept here comes from a parser, never from what the editor meant to write.
    """

    def __init__(
        self,
        lines: list[str],
        items: list[Any],
        starts: list[int],
        *,
        parse_item: ParseItem,
        default_style: Style | None = None,
        newline: str = "\n",
    ) -> None:
        if len(items) != len(starts):
            raise NotSplicable(f"{len(starts)} items in the text, {len(items)} parsed")
        self.lines = lines
        self.items = items
        self.starts = starts
        self.newline = newline
        self.changed = False
        self._parse_item = parse_item
        self._default_style = default_style or Style()
        self._style: Style | None = None

    @classmethod
    def scan(
        cls,
        lines: list[str],
        items: list[Any],
        *,
        parse_item: ParseItem,
        default_style: Style | None = None,
        newline: str = "\n",
        indents: Sequence[int] | None = None,
    ) -> BlockList:
        """A list whose item lines are found by their dashes (checked against ``items``)."""
        if indents is None:
            indents = line_indents(lines)
        column = next((indent for indent in indents if indent >= 0), 0)
        starts = item_starts(lines, column, indents)
        return cls(
            lines,
            items,
            starts,
            parse_item=parse_item,
            default_style=default_style,
            newline=newline,
        )

    def _value_of(self, new: list[str]) -> Any:
        parsed = self._parse_item("".join(new))
        if not isinstance(parsed, list) or len(parsed) != 1:
            raise NotSplicable("a rendered item did not read back as one item")
        return parsed[0]

    @property
    def style(self) -> Style:
        if self._style is None:
            self._style = style_of("".join(self.lines), default=self._default_style)
        return self._style

    def spans(self) -> list[tuple[Any, int, int]]:
        """Each item with its [start, end) lines; trailing comments and blank lines of an item
        belong to what follows it."""
        out = []
        lines = self.lines
        for i, start in enumerate(self.starts):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else len(lines)
            while end > start + 1 and is_comment_or_blank(lines[end - 1]):
                end -= 1
            out.append((self.items[i], start, end))
        return out

    def _ensure_newline_at_end(self) -> None:
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += self.newline

    def remove(self, indexes: Sequence[int]) -> None:
        """Cut out the items at ``indexes`` (their lines, up to the next item's comments)."""
        if not indexes:
            return
        self.changed = True
        spans = self.spans()
        for index in sorted(set(indexes), reverse=True):
            _, start, end = spans[index]
            del self.lines[start:end]
            del self.items[index]
            del self.starts[index]
            removed = end - start
            for j in range(index, len(self.starts)):
                self.starts[j] -= removed

    def append(self, entry: Any) -> None:
        """Add ``entry`` (a ruamel value) as the last item, in the list's style."""
        self.append_lines(render_entry(entry, self.style, self.newline))

    def append_lines(self, new: list[str]) -> None:
        """Add an item written as ``new`` lines (each ending in a newline)."""
        value = self._value_of(new)
        self._ensure_newline_at_end()
        self.changed = True
        at = len(self.lines)
        self.lines[at:at] = new
        self.items.append(value)
        self.starts.append(at)

    def item_lines(self, index: int) -> list[str]:
        _, start, end = self.spans()[index]
        return self.lines[start:end]

    def replace(self, index: int, entry: Any) -> None:
        """Re-render the item at ``index`` from ``entry`` (its own comments and keys kept)."""
        _, start, end = self.spans()[index]
        self._ensure_newline_at_end()
        new = render_entry(entry, self.style, self.newline)
        value = self._value_of(new)
        self.changed = True
        self.lines[start:end] = new
        self.items[index] = value
        delta = len(new) - (end - start)
        for j in range(index + 1, len(self.starts)):
            self.starts[j] += delta

    def text(self) -> str:
        return "".join(self.lines)
