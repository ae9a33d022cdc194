"""The webhook's log line formats: one JSON object per line, or ``TIME LEVEL logger: msg k=v``.

Pure formatting (:class:`logging.Formatter` subclasses); writing the lines is
:mod:`kubeiam.server.logwriter`'s job. A record's "extra" fields become the line's fields; a
``review`` dict (the review line's fields, :mod:`kubeiam.server.app`) is spread into them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

#: LogRecord attributes that are not "extra" fields.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


#: The JSON encoder of every line, made once (``json.dumps`` with options builds one per call).
_JSON = json.JSONEncoder(default=str, separators=(",", ":"))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes = vars(record)
    # The set difference runs in C: a record's ~20 standard attributes are not looked at one by
    # one on every review line. Several extras keep the order they were given in.
    extras = attributes.keys() - _RECORD_ATTRS
    for key in attributes if len(extras) > 1 else extras:
        if key not in extras or key.startswith("_"):
            continue
        value = attributes[key]
        if key == "review" and isinstance(value, dict):
            out.update(value)
        else:
            out[key] = value
    return out


class _SecondStamp:
    """``YYYY-MM-DDTHH:MM:SS`` of the last second asked for: lines come in bursts within one
    second, and formatting the date is most of a time stamp's cost. The second and its text
    are one tuple, replaced at once: threads that log see one or the other, never a mix."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = (-1, "")

    def of(self, second: int) -> str:
        last = self.last
        if last[0] == second:
            return last[1]
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.last = (second, text)
        return text


_STAMP = _SecondStamp()


def _timestamp(record: logging.LogRecord) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC). time.strftime: datetime costs 3x more per line."""
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    return f"{_STAMP.of(seconds)}.{millis:03d}Z"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__
        return _JSON.encode(doc)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: msg key=value ...`` (values with spaces quoted)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, f"{record.name}:", record.getMessage()]
        for key, value in _fields(record).items():
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                text = ",".join(value)
            else:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
            if not text or any(c.isspace() or c in '"=' for c in text):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"exception={record.exc_info[0].__name__}")
        return " ".join(parts)
