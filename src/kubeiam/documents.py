"""Bounded reading of the YAML and JSON documents kubeiam is given (pure).

Every file and variable kubeiam parses (server config, mapping files, DynamicFile JSON, aws-auth
sections, kubeconfigs) passes through here, so one set of rules decides what is readable and
every refusal reads the same: ``<source> line L, column C: <problem>`` plus a ``fix:``. A
document is refused, never half-read, when

* its bytes are not UTF-8 (:func:`decode_text`; a UTF-8 byte order mark is tolerated),
* it holds a control character or a lone surrogate (:func:`check_text`), also
  when an escape sequence (``"\\u0000"``, ``"\\ud800"``) produces one,
* it is larger than :data:`MAX_DOCUMENT_BYTES` or nested deeper than :data:`MAX_DEPTH`,
* an integer has more digits than Python converts (``sys.get_int_max_str_digits``),
* its anchors and aliases expand to far more nodes than its text holds (billion laughs),
* the same key appears twice in one mapping (YAML would silently keep the last: one rule for the
  server and ``mapping lint``).

YAML is built from libyaml's event stream (:func:`parse_yaml`): the C parser is iterative, the
builder here is a loop, so no depth of nesting can reach the interpreter's recursion limit, and
every check costs a comparison per event. It is the fast reader of aws-auth sections too
(10,000 entries well under a second, ``bench/bench_mapping.py``).

Only ``re`` and ``json`` are imported at module level; PyYAML is imported by the YAML functions.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from kubeiam.errors import DUPLICATE_KEY, ConfigError, MappingError

#: Kubeconfigs and mapping files are kilobytes; 10,000 mapping entries are about 1 MB. A bigger
#: file is a mistake (a log, an image, a runaway writer), and parsing it would cost memory.
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
#: Real documents nest fewer than 10 levels (a kubeconfig's deepest value is at 5). 100 is far
#: beyond any of them and far below the interpreter's recursion limit (1,000), so nothing that
#: walks a loaded document recursively (json.dumps, ruamel, deepcopy) can hit it.
MAX_DEPTH = 100
#: Aliases may re-use anchored nodes; the nodes they produce are limited to
#: max(MIN_ALIAS_NODES, ALIAS_EXPANSION_FACTOR x the nodes written in the text). A document that
#: expands further (billion laughs: 1 KB of text, 10^9 nodes) is refused after at most that
#: many nodes were counted: milliseconds, whatever it would expand to.
MIN_ALIAS_NODES = 10_000
ALIAS_EXPANSION_FACTOR = 10

DEFAULT_HINT = "fix the file (or move it away), then retry"

#: C0 controls other than tab, newline and carriage return; DEL; C1 controls other than NEL;
#: surrogates (only a mis-decoded or escaped string holds one: it is not a character).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")
_BOM = "\ufeff"
#: A JSON string, unrolled so that long strings do not backtrack.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


class DocumentError(ConfigError):
    """A document kubeiam cannot read: which one, where, and what is wrong."""

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = DEFAULT_HINT,
        code: str | None = None,
    ) -> None:
        where = ""
        if line is not None:
            where = f" line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(f"{source}{where}: {problem}", hint=hint, code=code)
        self.source = source
        self.problem = problem
        self.line = line
        self.column = column


class MappingDocumentError(DocumentError, MappingError):
    """A :class:`DocumentError` in a mapping file or section (exit code 2 either way)."""


def position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of ``text[index]``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _describe_char(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate U+{code:04X} (not a character; was the text decoded wrongly?)"
    return f"control character U+{code:04X}"


# -- text ---------------------------------------------------------------------------------------


def decode_text(data: bytes, *, source: str, error: type[DocumentError] = DocumentError) -> str:
    """UTF-8 ``data`` as checked text (:func:`check_text`); a leading BOM is dropped."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise error(
            source,
            f"is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB; kubeiam does not read it",
            hint="pass the right file (kubeconfigs and mapping files are small)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise error(
            source,
            f"is not UTF-8 text (byte 0x{bad:02x} at byte offset {exc.start})",
            hint="save the file as UTF-8 (for example `iconv -f LATIN1 -t UTF-8`), then retry",
        ) from None
    return check_text(text, source=source, error=error)


def check_text(text: str, *, source: str, error: type[DocumentError] = DocumentError) -> str:
    """``text`` without a leading BOM; refuses forbidden characters naming line and column."""
    if text.startswith(_BOM):
        text = text[1:]
    if len(text) > MAX_DOCUMENT_BYTES:
        raise error(source, f"is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")
    found = _FORBIDDEN.search(text)
    if found is not None:
        line, column = position(text, found.start())
        raise error(
            source,
            f"{_describe_char(found.group())} is not allowed",
            line=line,
            column=column,
            hint="remove it: no name, ARN or setting contains one",
        )
    return text


def _check_value(
    value: str, *, source: str, line: int, column: int, error: type[DocumentError]
) -> None:
    """A string an escape sequence produced holds no forbidden character."""
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise error(
            source,
            f"an escape sequence produces {_describe_char(found.group())}, which is not allowed",
            line=line,
            column=column,
            hint="remove the escape: no name, ARN or setting contains that character",
        )


def too_many_digits(source: str, text: str, error: type[DocumentError]) -> DocumentError:
    """The error for an integer longer than Python converts (``int()`` raises ValueError)."""
    limit = sys.get_int_max_str_digits()
    found = re.search(rf"\d{{{limit + 1},}}", text)
    line, column = position(text, found.start()) if found else (None, None)
    return error(
        source,
        f"an integer has more than {limit} digits",
        line=line,
        column=column,
        hint="no setting takes a number that large: fix the value",
    )


# -- JSON ---------------------------------------------------------------------------------------


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of JSON ``text`` nest (strings ignored)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    delta = _DELTA
    for char in brackets:
        depth += delta[char]
        if depth > deepest:
            deepest = depth
    return deepest


def check_json_depth(text: str, *, source: str, error: type[DocumentError] = DocumentError) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` (before any recursive parser runs)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot nest deeper than it has brackets
    if json_depth(text) <= MAX_DEPTH:
        return
    depth = 0
    for match in re.finditer(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', text):
        char = match.group()
        if char in _DELTA:
            depth += _DELTA[char]
            if depth > MAX_DEPTH:
                line, column = position(text, match.start())
                raise error(
                    source,
                    f"nests more than {MAX_DEPTH} levels deep",
                    line=line,
                    column=column,
                    hint="no kubeiam document nests that deep: fix the file",
                )


def _check_json_escapes(text: str, *, source: str, error: type[DocumentError]) -> None:
    """``\\uXXXX`` escapes name no control character and no unpaired surrogate."""
    if "\\u" not in text:
        return
    pending_high: re.Match[str] | None = None
    for match in _JSON_ESCAPE.finditer(text):
        hexdigits = match.group(1)
        code = int(hexdigits, 16) if hexdigits else -1
        if pending_high is not None:
            if 0xDC00 <= code <= 0xDFFF and match.start() == pending_high.end():
                pending_high = None
                continue
            break
        if 0xD800 <= code <= 0xDBFF:
            pending_high = match
            continue
        if code >= 0 and _FORBIDDEN.match(chr(code)):
            line, column = position(text, match.start())
            _check_value(chr(code), source=source, line=line, column=column, error=error)
    else:
        if pending_high is None:
            return
    if pending_high is not None:  # a high surrogate not followed by a low one
        line, column = position(text, pending_high.start())
        code = int(pending_high.group(1), 16)
        _check_value(chr(code), source=source, line=line, column=column, error=error)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJSONKey(key)
        result[key] = value
    return result


class _DuplicateJSONKey(Exception):
    pass


def _json_duplicate(
    text: str, key: str, *, source: str, error: type[DocumentError]
) -> DocumentError:
    """The duplicate-key error of a JSON text, with both lines when the YAML reader (JSON is
    flow YAML) can name them; the parser's scanner keeps no positions."""
    try:
        parse_yaml(text, source=source, typed=False, error=error)
    except DocumentError as found:
        if found.code == DUPLICATE_KEY:
            return found
    return error(
        source,
        f"`{key}` appears twice in the same object",
        hint="remove one of them (a reader would silently keep only one)",
        code=DUPLICATE_KEY,
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(
    text: str, *, source: str = "the document", error: type[DocumentError] = DocumentError
) -> Any:
    """One JSON document, checked by every rule of this module."""
    text = check_text(text, source=source, error=error)
    check_json_depth(text, source=source, error=error)
    _check_json_escapes(text, source=source, error=error)
    try:
        return json.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except _DuplicateJSONKey as exc:
        raise _json_duplicate(text, exc.args[0], source=source, error=error) from None
    except json.JSONDecodeError as exc:
        raise error(
            source, f"is not valid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise too_many_digits(source, text, error) from None
        raise error(source, f"is not valid JSON: {exc}") from None
    except RecursionError:  # pragma: no cover - check_json_depth ran first
        raise error(source, f"nests more than {MAX_DEPTH} levels deep") from None


# -- YAML ---------------------------------------------------------------------------------------

#: Plain scalars that mean null in YAML 1.1 (``groups:`` with nothing after it).
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_MERGE_TAG = "tag:yaml.org,2002:merge"


class LineMap(dict[str, Any]):
    """A dict that remembers the line its mapping started on."""

    __slots__ = ("line",)
    line: int


class LineList(list[Any]):
    """A list that remembers its own line and the line each item started on."""

    __slots__ = ("line", "lines")
    line: int
    lines: list[int]


_NOKEY = object()


def _count_nodes(value: Any, limit: int) -> int:
    """Nodes in ``value`` counting shared ones each time (stops counting past ``limit``)."""
    count = 0
    todo = [value]
    while todo:
        item = todo.pop()
        count += 1
        if count > limit:
            break
        if isinstance(item, dict):
            count += len(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return count


class _Scalars:
    """Typed scalars as PyYAML's safe loader resolves and constructs them."""

    def __init__(self) -> None:
        import yaml

        self.node = yaml.ScalarNode
        self.resolver: Any = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.str_tag = "tag:yaml.org,2002:str"

    def tag(self, event: Any) -> str:
        tag: str | None = event.tag
        if tag is None or tag == "!":
            if event.style:  # quoted or block: a string
                return self.str_tag
            return str(self.resolver.resolve(self.node, event.value, event.implicit))
        return tag

    def value(self, tag: str, event: Any) -> Any:
        if tag == self.str_tag:
            return event.value
        build = self.constructor.yaml_constructors.get(tag)
        if build is None:
            raise ValueError(f"unknown tag {tag}")
        node = self.node(tag, event.value, event.start_mark, event.end_mark, event.style)
        return build(self.constructor, node)


def parse_yaml(
    text: str,
    *,
    source: str = "the document",
    typed: bool = True,
    error: type[DocumentError] = DocumentError,
) -> Any:
    """One YAML document as dicts, lists and scalars (None for an empty one).

    ``typed``: scalars as PyYAML's safe loader makes them (ints, bools, dates, merge keys).
    Otherwise every scalar stays the string that was written (``012345678901`` is an account
    id, not a number), plain null spellings become ``None``, and mappings and lists are
    :class:`LineMap` / :class:`LineList` carrying their lines (the aws-auth reader's form).
    """
    import yaml

    text = check_text(text, source=source, error=error)
    scalars = _Scalars() if typed else None
    stack: list[list[Any]] = []  # [container, pending key, its line, {key: line} or None]
    anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, line)
    open_anchors: set[str] = set()
    root: Any = None
    documents = 0
    events = 0
    alias_nodes = 0
    nokey = _NOKEY
    nulls = _NULLS
    max_depth = MAX_DEPTH
    scalar_t, map_start_t, seq_start_t = (
        yaml.ScalarEvent,
        yaml.MappingStartEvent,
        yaml.SequenceStartEvent,
    )
    map_end_t, seq_end_t, alias_t = yaml.MappingEndEvent, yaml.SequenceEndEvent, yaml.AliasEvent
    doc_start_t, stream_end_t = yaml.DocumentStartEvent, yaml.StreamEndEvent
    loader: Any = yaml.CSafeLoader(text)
    get_event = loader.get_event
    try:
        while True:
            event: Any = get_event()
            events += 1
            cls = type(event)
            merge = False
            if cls is scalar_t:
                value: Any = event.value
                if scalars is not None:
                    tag = scalars.tag(event)
                    merge = tag == _MERGE_TAG
                    if not merge:
                        value = scalars.value(tag, event)
                elif not event.style and value in nulls and event.implicit[0]:
                    value = None
                if event.style == '"':  # the text was checked: only an escape can add one
                    mark = event.start_mark
                    _check_value(
                        event.value,
                        source=source,
                        line=mark.line + 1,
                        column=mark.column + 1,
                        error=error,
                    )
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
            elif cls is map_start_t or cls is seq_start_t:
                if len(stack) >= max_depth:
                    mark = event.start_mark
                    raise error(
                        source,
                        f"nests more than {max_depth} levels deep",
                        line=mark.line + 1,
                        column=mark.column + 1,
                        hint="no kubeiam document nests that deep: fix the file",
                    )
                line = event.start_mark.line + 1
                if cls is map_start_t:
                    container: Any = LineMap() if scalars is None else {}
                    frame = [container, nokey, 0, {}]
                else:
                    container = LineList() if scalars is None else []
                    if scalars is None:
                        container.lines = []
                    frame = [container, nokey, 0, None]
                if scalars is None:
                    container.line = line
                if event.anchor:
                    anchors[event.anchor] = (container, 0)
                    open_anchors.add(event.anchor)
                    frame.append(event.anchor)
                stack.append(frame)
                continue
            elif cls is map_end_t or cls is seq_end_t:
                frame = stack.pop()
                value = frame[0]
                if len(frame) > 4:
                    open_anchors.discard(frame[4])
            elif cls is alias_t:
                name = event.anchor
                mark = event.start_mark
                if name not in anchors:
                    raise error(
                        source,
                        f"is not valid YAML: unknown alias *{name}",
                        line=mark.line + 1,
                        column=mark.column + 1,
                    )
                if name in open_anchors:
                    raise error(
                        source,
                        f"alias *{name} refers to the node that contains it (a cycle)",
                        line=mark.line + 1,
                        column=mark.column + 1,
                    )
                value = anchors[name][0]
                budget = max(MIN_ALIAS_NODES, ALIAS_EXPANSION_FACTOR * events)
                alias_nodes += _count_nodes(value, budget - alias_nodes)
                if alias_nodes > budget:
                    raise error(
                        source,
                        "its anchors and aliases expand to far more nodes than the text holds "
                        f"(over {budget}); kubeiam refuses such documents",
                        line=mark.line + 1,
                        column=mark.column + 1,
                        hint="write the repeated parts out, or use fewer nested aliases",
                    )
            elif cls is doc_start_t:
                documents += 1
                if documents > 1:
                    mark = event.start_mark
                    raise error(
                        source,
                        "expected one YAML document, found several",
                        line=mark.line + 1,
                        hint="remove the `---` separators and the documents after the first",
                    )
                continue
            elif cls is stream_end_t or event is None:
                break
            else:
                continue
            if not stack:
                root = value
                continue
            frame = stack[-1]
            container = frame[0]
            seen = frame[3]
            if seen is None:
                container.append(value)
                if scalars is None:
                    line = getattr(value, "line", None)
                    container.lines.append(line if line is not None else event.start_mark.line + 1)
            elif frame[1] is nokey:
                if merge:
                    frame[1] = _MERGE_TAG
                elif scalars is None:
                    frame[1] = value if isinstance(value, str) else str(value)
                else:
                    try:
                        hash(value)
                    except TypeError:
                        raise error(
                            source,
                            "a mapping key must be a plain value, not a list or mapping",
                            line=event.start_mark.line + 1,
                        ) from None
                    frame[1] = value
                frame[2] = event.start_mark
            else:
                key = frame[1]
                frame[1] = nokey
                mark = frame[2]
                if key is _MERGE_TAG and scalars is not None:
                    _merge(container, value, seen, source=source, line=mark.line + 1, error=error)
                    continue
                first = seen.get(key)
                if first is not None:
                    raise _duplicate_key(key, first, mark, source=source, error=error)
                seen[key] = mark
                container[key] = value
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(
            source,
            f"is not valid YAML: {problem}",
            line=mark.line + 1 if mark is not None else None,
            column=mark.column + 1 if mark is not None else None,
        ) from None
    except ValueError as exc:  # a scalar the constructor refuses (digits, dates, tags)
        if "integer string conversion" in str(exc):
            raise too_many_digits(source, text, error) from None
        mark = getattr(event, "start_mark", None)
        raise error(
            source,
            f"cannot read the value {str(getattr(event, 'value', ''))[:40]!r}: {exc}",
            line=mark.line + 1 if mark is not None else None,
        ) from None
    finally:
        loader.dispose()
    return root


def _duplicate_key(
    key: Any, first: Any, second: Any, *, source: str, error: type[DocumentError]
) -> DocumentError:
    """The same key twice in one mapping: both places (lines, or columns on one line)."""
    if first.line == second.line:
        where = f"line {first.line + 1}, columns {first.column + 1} and {second.column + 1}"
    else:
        where = f"lines {first.line + 1} and {second.line + 1}"
    return error(
        source,
        f"`{key}` appears twice in the same mapping: {where}",
        line=second.line + 1,
        hint="remove one of them (other readers silently keep only the last)",
        code=DUPLICATE_KEY,
    )


def _merge(
    container: dict[Any, Any],
    value: Any,
    seen: dict[Any, Any],
    *,
    source: str,
    line: int,
    error: type[DocumentError],
) -> None:
    """``<<: *base`` (or a list of them): keys written in the mapping itself win."""
    merged = value if isinstance(value, list) else [value]
    for item in merged:
        if not isinstance(item, dict):
            raise error(source, "`<<` must merge a mapping or a list of mappings", line=line)
        for key, item_value in item.items():
            if key not in seen and key not in container:
                container[key] = item_value


def load_document(
    text: str,
    *,
    source: str,
    json_format: bool = False,
    error: type[DocumentError] = DocumentError,
) -> Any:
    """A YAML document (typed), or a JSON one when ``json_format``; see the module doc."""
    if json_format:
        return load_json(text, source=source, error=error)
    return parse_yaml(text, source=source, error=error)
