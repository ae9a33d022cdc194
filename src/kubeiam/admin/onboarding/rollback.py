"""Roll back what *this run* of a workflow created, in reverse order, when a later step fails.

A workflow opens a :func:`transaction`, calls :meth:`Rollback.step` before each step (the hook
tests use to inject a failure) and :meth:`Rollback.did` after each change it made, with the
action that undoes it. Things that existed before the run are never recorded, so never undone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kubeiam.errors import KubeIAMError

Progress = Callable[[str], None]
StepHook = Callable[[str], None]


class Rollback:
    """The undo actions of the steps this run completed."""

    def __init__(self, progress: Progress, hook: StepHook | None) -> None:
        self._progress = progress
        self._hook = hook
        self._undo: list[tuple[str, Callable[[], object]]] = []
        #: What this run changed, in order (shown to the user and in results).
        self.created: list[str] = []

    def step(self, name: str) -> None:
        """Mark the start of step ``name`` (the failure-injection point for tests)."""
        if self._hook is not None:
            self._hook(name)

    def did(self, description: str, undo: Callable[[], object]) -> None:
        """Record that this run did ``description``, undone by ``undo``."""
        self.created.append(description)
        self._undo.append((description, undo))

    def undo_all(self) -> list[str]:
        """Run every undo in reverse; returns the descriptions that could not be undone."""
        failed: list[str] = []
        while self._undo:
            description, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep undoing the rest whatever went wrong
                failed.append(description)
                self._progress(f"could not roll back {description}: {safe_message(exc)}")
            else:
                self._progress(f"rolled back: {description}")
        return failed


class Steps:
    """Base of the workflow classes: the progress callback and the step hook they share."""

    progress: Progress
    step_hook: StepHook | None

    def _step(self, name: str) -> None:
        """Mark step ``name`` of a workflow that rolls forward (no transaction)."""
        if self.step_hook is not None:
            self.step_hook(name)


def safe_message(exc: BaseException) -> str:
    """Our messages carry no secrets; a foreign exception is reduced to its type name."""
    return exc.message if isinstance(exc, KubeIAMError) else type(exc).__name__


@contextmanager
def transaction(progress: Progress, hook: StepHook | None) -> Iterator[Rollback]:
    """Yield a :class:`Rollback`; on any exception, undo what was recorded, then re-raise."""
    rollback = Rollback(progress, hook)
    try:
        yield rollback
    except BaseException as exc:
        if rollback.created:
            progress(f"failed: {safe_message(exc)}; rolling back what this run created")
            failed = rollback.undo_all()
            if failed and isinstance(exc, KubeIAMError):
                left = "left behind after a failed rollback: " + ", ".join(failed)
                exc.hint = f"{exc.hint}; {left}" if exc.hint else left
        raise
