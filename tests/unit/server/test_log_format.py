"""The webhook's line formats: time stamps and fields, whatever order the records come in."""

from __future__ import annotations

import json
import logging
import time

import pytest

from kubeiam.server.logformat import JSONFormatter, TextFormatter


def record(created: float, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("kubeiam.review", logging.INFO, __file__, 1, "token review", (), None)
    rec.created = created
    rec.__dict__.update(extra)
    return rec


def expected_stamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


#: Times in the same second, the next second, back to an earlier one, across a day and a year.
TIMES = [
    1_796_000_000.0,
    1_796_000_000.999,
    1_796_000_001.5,
    1_796_000_000.25,
    1_796_083_199.999,
    1_796_083_200.0,
    1_798_761_599.5,
    1_798_761_600.001,
]


@pytest.mark.parametrize("formatter", [JSONFormatter(), TextFormatter()], ids=["json", "text"])
def test_each_line_carries_its_own_time_whatever_came_before(
    formatter: logging.Formatter,
) -> None:
    for created in TIMES + list(reversed(TIMES)):
        line = formatter.format(record(created))
        stamp = json.loads(line)["time"] if line.startswith("{") else line.split(" ", 1)[0]
        assert stamp == expected_stamp(created)


def test_review_fields_are_spread_and_other_extras_kept_in_order() -> None:
    line = JSONFormatter().format(
        record(TIMES[0], review={"outcome": "success", "status": 200}, phase="idle", _hidden=1)
    )
    assert list(json.loads(line).items()) == list(
        {
            "time": expected_stamp(TIMES[0]),
            "level": "info",
            "logger": "kubeiam.review",
            "msg": "token review",
            "outcome": "success",
            "status": 200,
            "phase": "idle",
        }.items()
    )
    text = TextFormatter().format(record(TIMES[0], zeta=1, alpha=2, mid=3))
    assert text.endswith("token review zeta=1 alpha=2 mid=3")
