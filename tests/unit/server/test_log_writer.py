"""The server's background log writer: every line, in order, in few writes."""

from __future__ import annotations

import io
import logging

import pytest

from kubeiam.server.config import LogFormat
from kubeiam.server.logwriter import configure_logging
from support.waiting import wait_for


class CountingStream(io.StringIO):
    """A stream that counts the write calls it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def restore_root_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_burst_is_written_in_order_in_fewer_writes(restore_root_logging: object) -> None:
    out = CountingStream()
    setup = configure_logging(LogFormat.TEXT, stream=out, background=True)
    review = logging.getLogger("kubeiam.server.review")
    for number in range(500):
        review.info("token review", extra={"number": number})
    setup.close()
    lines = out.getvalue().splitlines()
    assert [line.rsplit("number=", 1)[1] for line in lines] == [str(n) for n in range(500)]
    # One wake-up of the writer per burst: a per-line writer would make 500 writes.
    assert out.writes < 50


def test_lines_logged_after_a_pause_are_written_too(restore_root_logging: object) -> None:
    out = CountingStream()
    setup = configure_logging(LogFormat.TEXT, stream=out, background=True)
    review = logging.getLogger("kubeiam.server.review")
    review.info("first")
    # the writer has written "first" and waits for the next line
    wait_for(lambda: "first" in out.getvalue(), what="the first line written")
    review.info("second")
    setup.close()
    assert [line.split(": ", 1)[1] for line in out.getvalue().splitlines()] == ["first", "second"]
