"""Round-trip YAML for files people edit by hand (kubeconfig, server config).

ruamel.yaml keeps comments, key order and quoting; :func:`load` also guesses the file's
indentation so that entries kubeiam adds look like their neighbours and untouched entries are
dumped exactly as they were written.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from kubeiam.errors import ConfigError

#: Never re-wrap long lines of an existing file (certificate data, long ARNs).
_WIDTH = 4096


def make_yaml(indent: int | None = None, offset: int | None = None) -> Any:
    """A round-trip ``YAML`` whose block sequences use ``indent``/``offset`` (kubectl: 2/0)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = _WIDTH
    sequence = indent if indent and indent >= 2 else 2
    seq_offset = offset if offset is not None and offset <= sequence - 2 else 0
    yaml.indent(mapping=2, sequence=max(sequence, seq_offset + 2), offset=seq_offset)
    return yaml


_KEY_LINE = re.compile(r"^(?P<indent> *)[^\s#-][^#]*:\s*(#.*)?$")
_DASH_LINE = re.compile(r"^(?P<indent> *)- ")


def guess_sequence_indent(text: str, default: tuple[int, int]) -> tuple[int, int]:
    """(sequence indent, dash offset) of the first block sequence under a key.

    ``key:\n- a`` is (2, 0) (kubectl's style); ``key:\n  - a`` is (4, 2). A plain scan of the
    lines: cheaper than ruamel's own guess, which parses the whole document a second time.
    """
    previous: re.Match[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        dash = _DASH_LINE.match(line)
        if dash is not None and previous is not None:
            offset = len(dash.group("indent")) - len(previous.group("indent"))
            if offset >= 0:
                return offset + 2, offset
        previous = _KEY_LINE.match(line)
    return default


def load(
    path: Path, text: str | None, *, default_indent: tuple[int, int] = (2, 0)
) -> tuple[Any, Any]:
    """(document or None for an empty text, YAML configured to dump it as it was written).

    Raises :class:`ConfigError` naming the file and line for invalid YAML. The text first passes
    the bounded loader (:func:`kubeiam.documents.parse_yaml`, libyaml's fast event stream): ruamel
    is pure Python and recursive, so depth, alias expansion, duplicate keys and bad characters
    are refused before it runs, with the same rules and messages as every other reader.
    """
    from ruamel.yaml.error import YAMLError

    from kubeiam.documents import DocumentError, parse_yaml, too_many_digits

    if text is None or not text.strip():
        return None, make_yaml(*default_indent)
    try:
        parse_yaml(text, source=str(path), typed=False)
    except DocumentError as exc:
        raise DocumentError(
            str(path),
            f"{exc.problem}; nothing was written",
            line=exc.line,
            column=exc.column,
            hint=exc.hint,
        ) from None
    try:
        yaml = make_yaml(*guess_sequence_indent(text, default_indent))
        doc = yaml.load(text)
    except ValueError as exc:  # a plain scalar ruamel cannot convert (digits, dates)
        if "integer string conversion" in str(exc):
            raise too_many_digits(str(path), text, DocumentError) from None
        raise DocumentError(
            str(path), f"a value cannot be read ({exc}); nothing was written"
        ) from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            f"{path} is not valid YAML{where}; nothing was written",
            hint="fix the file or move it away, then retry",
        ) from None
    return doc, yaml


def dump(doc: Any, yaml: Any) -> str:
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()
