"""Round-trip YAML for files people edit by hand (kubeconfig, server config).

ruamel.yaml keeps comments, key order and quoting; :func:`load` also guesses the file's
indentation so that entries kubeiam adds look like their neighbours and untouched entries are
dumped exactly as they were written.
"""

from __future__ import annotations

import io
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


def load(
    path: Path, text: str | None, *, default_indent: tuple[int, int] = (2, 0)
) -> tuple[Any, Any]:
    """(document or None for an empty text, YAML configured to dump it as it was written).

    Raises :class:`ConfigError` naming the file and line for invalid YAML.
    """
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    if text is None or not text.strip():
        return None, make_yaml(*default_indent)
    try:
        _, indent, offset = load_yaml_guess_indent(text)
        yaml = make_yaml(indent, offset)
        doc = yaml.load(text)
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
