"""The mapping sections of a server config file, edited by splicing its text (pure).

A server config holds its mappings under ``server:`` (``server.mapRoles`` ...). To edit a file of
10,000 entries in well under a second, and to keep every line an edit does not touch byte for
byte, the file is not round-tripped through ruamel: :class:`ConfigText` finds the ``server:`` key,
its children and each mapping section's block list by a scan of the lines, checks what it found
against the document the server's loader parsed (same keys, same number of items), and then edits
each section as a :class:`~kubeiam.mapping.block_list.BlockList`. Adding a section adds its key
after the last line of ``server:``; a section left empty is removed with its key, and ``server:``
too when nothing is left in it (as the round-trip editor did).

The parsed document is kept in step with the text: each section's list *is* the list the
document holds, spliced together with the lines, and every new item is read back from its own
lines by the server's parser. The result can therefore be validated with the server's rules
without a second parse of the whole file; the tests compare it with a fresh parse after random
edits.

Anything the scan does not recognise (flow-style sections, anchors and aliases, keys written on
several lines, odd indentation) raises :class:`~kubeiam.mapping.block_list.NotSplicable`, and the
caller falls back to the ruamel round trip, which handles any YAML but takes seconds on a big
file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeiam.mapping.block_list import (
    BlockList,
    NotSplicable,
    Style,
    indent_of,
    line_indents,
)
from kubeiam.mapping.model import ACCOUNTS, GROUPS, ROLES, USERS

SECTION_NAMES = {s.lower(): s for s in (ROLES, USERS, ACCOUNTS, GROUPS)}
_HOLDER = "server"

#: ``key: rest`` on one line; the key plain (no flow, alias, tag, block or complex-key indicator
#: first) or quoted without escapes.
_KEY_LINE = re.compile(
    r"(?P<key>\"[^\"\\]*\"|'[^']*'|[^\s#'\"\-?&*!|>%@`{\[\]}:,][^#\r\n]*?)"
    r"[ \t]*:(?:[ \t]+(?P<rest>[^\r\n]*?))?[ \t]*\r?\n?"
)
#: A value on the key line that means "nothing yet" (YAML 1.1 nulls, an empty flow list), with an
#: optional comment after it.
_EMPTY_VALUE = re.compile(r"(?:~|null|Null|NULL|\[\s*\])?[ \t]*(?P<comment>#.*)?")
#: Anchors, aliases, merge keys, and block scalars that keep their trailing blank lines
#: (``|+``: a line inserted after them would change the value): left to the round trip.
_ANCHOR_OR_ALIAS = re.compile(
    r"(?:^|[\s\[{,])[&*][^\s,\]}]|<<\s*:|:[ \t]+[|>][1-9]?\+", re.MULTILINE
)


def _key_of(line: str) -> tuple[str, str]:
    """(key, rest of the line) of a ``key: value`` line; NotSplicable for anything else."""
    match = _KEY_LINE.fullmatch(line.lstrip(" "))
    if match is None:
        raise NotSplicable(f"not a simple `key: value` line: {line.strip()[:40]!r}")
    key = match.group("key")
    if key[:1] in ("'", '"'):
        key = key[1:-1]
    return key, match.group("rest") or ""


def _rest_is_empty(rest: str) -> tuple[bool, str]:
    """(the value on the key line is null, an empty list or absent; its comment)."""
    match = _EMPTY_VALUE.fullmatch(rest)
    if match is None:
        return False, ""
    return True, match.group("comment") or ""


@dataclass
class _Section:
    """A mapping section: its key line, the lines up to its first item, its list."""

    key_line: int
    key: str
    comment: str
    #: Original lines [key_line, block_start) are the head; [block_start, end) the block.
    block_start: int
    end: int
    block: BlockList
    #: The key line's value was null or ``[]``: rewritten as a block key when items arrive.
    was_empty: bool
    removed: bool = False


@dataclass
class _NewSection:
    key: str
    block: BlockList
    removed: bool = False


@dataclass
class _Layout:
    """Where things are in the original lines."""

    server_line: int | None = None
    #: [server_line, server_end): the holder's lines.
    server_end: int = 0
    #: Where new sections go: after the holder's last content line.
    insert_at: int = 0
    child_indent: int = 2
    server_was_empty: bool = False
    server_comment: str = ""
    sections: dict[str, _Section] = field(default_factory=dict)


class ConfigText:
    """A server config's text and its parsed document, edited together (see the module doc).

    ``doc`` is the typed document the server's loader parsed from ``text`` (a dict, or None for
    an empty file); ``parse_item`` reads one item's lines as that loader would. ``style`` is the
    indentation new lists follow.
    """

    def __init__(
        self,
        text: str,
        doc: Any,
        *,
        parse_item: Callable[[str], Any],
        style: Style,
    ) -> None:
        if doc is not None and not isinstance(doc, dict):
            raise NotSplicable("the top level is not a mapping")
        if text.startswith("\ufeff"):
            raise NotSplicable("a byte order mark")
        if ("&" in text or "*" in text or "<<" in text or "+" in text) and _ANCHOR_OR_ALIAS.search(
            text
        ):
            raise NotSplicable("anchors, aliases, merge keys or kept block scalars")
        self.lines = text.splitlines(keepends=True)
        self._indents = line_indents(self.lines)
        self.doc: dict[Any, Any] = doc if doc is not None else {}
        self._parse_item = parse_item
        self._style = style
        self.newline = "\r\n" if self.lines and self.lines[0].endswith("\r\n") else "\n"
        self._new_sections: list[_NewSection] = []
        self._server_created = False
        self._server_removed = False
        self._layout = self._scan()

    # -- reading the layout --------------------------------------------------------------------

    def _top_keys(self) -> list[tuple[int, str, str]]:
        keys: list[tuple[int, str, str]] = []
        indents = self._indents
        for i, line in enumerate(self.lines):
            if indents[i] != 0:
                continue
            if line.rstrip("\r\n") == "---" and not keys:
                continue
            if line.startswith("\t"):
                raise NotSplicable("a tab indents a line")
            key, rest = _key_of(line)
            keys.append((i, key, rest))
        if len(keys) != len(self.doc):
            raise NotSplicable("the top-level keys do not read back one per line")
        return keys

    def _scan(self) -> _Layout:
        layout = _Layout()
        top = self._top_keys()
        holders = [(i, key, rest) for i, key, rest in top if key.lower() == _HOLDER]
        if any(key.lower() in SECTION_NAMES for _, key, _ in top):
            raise NotSplicable("mapping sections at the top level")
        if not holders:
            if any(str(k).lower() == _HOLDER for k in self.doc):
                raise NotSplicable("server is not where the scan looked")
            layout.insert_at = len(self.lines)
            return layout
        if len(holders) > 1:
            raise NotSplicable("server is given twice")
        start, key, rest = holders[0]
        empty, comment = _rest_is_empty(rest)
        if not empty:
            raise NotSplicable("server is not written as a block mapping")
        following = [i for i, _, _ in top if i > start]
        end = following[0] if following else len(self.lines)
        layout.server_line, layout.server_end, layout.server_comment = start, end, comment
        indents = self._indents
        content = [i for i in range(start + 1, end) if indents[i] >= 0]
        holder = self.doc.get(key)
        if not content:
            if holder not in (None, {}):
                raise NotSplicable("server's value is not where the scan looked")
            layout.server_was_empty = True
            layout.insert_at = start + 1
            return layout
        if not isinstance(holder, dict):
            raise NotSplicable("server is not a mapping")
        layout.insert_at = content[-1] + 1
        indent = indents[content[0]]
        layout.child_indent = indent
        children = []
        for i in content:
            line = self.lines[i]
            line_indent = indents[i]
            if line[line_indent] == "\t":
                raise NotSplicable("a tab indents a line")
            if line_indent < indent:
                raise NotSplicable(f"line {i + 1} is less indented than server's keys")
            if line_indent == indent and line[indent] != "-":
                children.append((i, *_key_of(line)))
        if len(children) != len(holder):
            raise NotSplicable("server's keys do not read back one per line")
        for n, (i, child, rest) in enumerate(children):
            name = SECTION_NAMES.get(child.lower())
            if name is None:
                continue
            child_end = children[n + 1][0] if n + 1 < len(children) else end
            layout.sections[name] = self._section(holder, i, child, rest, child_end)
        for key in holder:
            name = SECTION_NAMES.get(str(key).lower())
            if name is not None and name not in layout.sections:
                raise NotSplicable(f"{key} is not where the scan looked")
        return layout

    def _section(self, holder: dict[Any, Any], at: int, key: str, rest: str, end: int) -> _Section:
        value = holder.get(key)
        empty, comment = _rest_is_empty(rest)
        if not empty:
            raise NotSplicable(f"{key} is not written as a block list")
        indents = self._indents
        content = [i for i in range(at + 1, end) if indents[i] >= 0]
        if not content:
            if value not in (None, []):
                raise NotSplicable(f"{key}'s value is not where the scan looked")
            items: list[Any] = []
            holder[key] = items
            block = self._block([], items, indent_of(self.lines[at]) + self._style.nested_offset)
            return _Section(at, key, comment, at + 1, at + 1, block, was_empty=True)
        if not isinstance(value, list):
            raise NotSplicable(f"{key} is not a list")
        block_end = content[-1] + 1
        block = BlockList.scan(
            self.lines[content[0] : block_end],
            value,
            parse_item=self._parse_item,
            default_style=self._style,
            newline=self.newline,
            indents=indents[content[0] : block_end],
        )
        return _Section(at, key, comment, content[0], block_end, block, was_empty=False)

    def _block(self, lines: list[str], items: list[Any], top: int | None = None) -> BlockList:
        style = self._style if top is None else Style(top, self._style.nested_offset)
        return BlockList(
            lines, items, [], parse_item=self._parse_item, default_style=style, newline=self.newline
        )

    # -- sections ------------------------------------------------------------------------------

    def holder(self) -> dict[Any, Any] | None:
        """The parsed ``server`` mapping (None when the file has none)."""
        for key, value in self.doc.items():
            if str(key).lower() == _HOLDER and isinstance(value, dict):
                return value
        return None

    def block(self, name: str, *, create: bool) -> BlockList | None:
        """Section ``name``'s list (created, with its key and ``server:``, when ``create``)."""
        section = self._layout.sections.get(name)
        if section is not None and not section.removed:
            return section.block
        for new in self._new_sections:
            if new.key == name and not new.removed:
                return new.block
        if not create:
            return None
        holder = self.holder()
        if holder is None:
            holder = {}
            key = next((k for k in self.doc if str(k).lower() == _HOLDER), _HOLDER)
            self.doc[key] = holder
            # Absent, or removed by an earlier edit of this document: written anew.
            self._server_created = self._layout.server_line is None or self._server_removed
            self._server_removed = False
            if self._server_created:
                self._layout.child_indent = 2
        items: list[Any] = []
        holder[name] = items
        top = self._layout.child_indent + self._style.nested_offset
        block = self._block([], items, top)
        self._new_sections.append(_NewSection(name, block))
        return block

    def drop_if_empty(self, name: str) -> None:
        """Remove section ``name`` (its key and lines) when its list is empty, and ``server:``
        when that leaves it empty."""
        block = self.block(name, create=False)
        if block is None or block.items:
            return
        holder = self.holder()
        assert holder is not None
        key = next(k for k in holder if str(k).lower() == name.lower())
        del holder[key]
        section = self._layout.sections.get(name)
        if section is not None and section.block is block:
            section.removed = True
        for new in self._new_sections:
            if new.block is block:
                new.removed = True
        if not holder:
            del self.doc[next(k for k in self.doc if str(k).lower() == _HOLDER)]
            self._server_removed = True
            self._server_created = False

    # -- writing -------------------------------------------------------------------------------

    def _new_lines(self) -> list[str]:
        nl = self.newline
        pad = " " * self._layout.child_indent
        out: list[str] = []
        for new in self._new_sections:
            if not new.removed:
                out += [f"{pad}{new.key}:{nl}", *new.block.lines]
        return out

    def text(self) -> str:
        layout = self._layout
        lines = self.lines
        nl = self.newline
        if self._server_removed and layout.server_line is None:
            return "".join(lines)  # a server: this document added went again
        if self._server_removed or (self._server_created and layout.server_line is not None):
            # The original server: went with its last entry (and may have come back anew).
            at, end = layout.server_line or 0, layout.server_end
            new = [] if self._server_removed else [f"{_HOLDER}:{nl}", *self._new_lines()]
            return "".join(lines[:at] + new + lines[end:])
        edits: list[tuple[int, int, list[str]]] = []
        for section in layout.sections.values():
            if section.removed:
                edits.append((section.key_line, section.end, []))
            elif section.block.changed:
                head = lines[section.key_line : section.block_start]
                if section.was_empty:
                    pad = " " * indent_of(head[0])
                    comment = f" {section.comment}" if section.comment else ""
                    head = [f"{pad}{section.key}:{comment}{nl}"]
                edits.append((section.key_line, section.end, head + section.block.lines))
        new = self._new_lines()
        if new:
            if self._server_created:
                new = [f"{_HOLDER}:{nl}", *new]
            elif layout.server_was_empty and layout.server_line is not None:
                comment = f" {layout.server_comment}" if layout.server_comment else ""
                key_line = lines[layout.server_line]
                key = key_line[: key_line.index(":")]
                edits.append((layout.server_line, layout.server_line + 1, [f"{key}:{comment}{nl}"]))
            edits.append((layout.insert_at, layout.insert_at, new))
        out: list[str] = []
        at = 0
        for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
            out += lines[at:start]
            if out and not out[-1].endswith("\n"):
                out[-1] += nl
            out += replacement
            at = max(at, end)
        out += lines[at:]
        return "".join(out)
