"""The last line of defence against a document that stalls a rule set: a limit on the CPU time one rule set
may spend on one document.

Every rule set of ours runs in time linear in the document (docs/filters.md, "Linear time"), but a case
nobody found could still take minutes on one document and hold a whole task. `TimeGuard` runs a rule set's
batch under an alarm on the process's CPU time (`setitimer(ITIMER_PROF)`: a busy machine does not make a
document look slow). A batch that runs over `max_seconds` is judged again document by document under the
same limit, and a document that runs over it alone gets the verdict `Quarantined("<rule set>:time_limit")`
(a str, so any caller reads it as a reason; the build's ingest step counts it as quarantined, not filtered).

The alarm raises its exception where Python runs signal handlers: in the main thread only. Ray runs a
task's function in its worker process's main thread, and so does datatrove's local executor (tests check
both). Elsewhere the guard cannot interrupt anything, so it runs the rule set unguarded and says so once.
CPython's regular expression engine checks for signals as it matches, so a backtracking pattern is stopped
mid-match; C code that does not check (numpy, the filters' own extensions, all linear) is stopped when it
returns.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from loguru import logger

from gristmill.pipelines.filters.base import DocumentFilter

TIME_LIMIT = "time_limit"  # the rule named in the reason of a document quarantined by the guard


class Quarantined(str):
    """A verdict that quarantines its document rather than dropping it: the reason, a str like any other."""


class _Overtime(BaseException):
    """Raised by the alarm (a BaseException: no `except Exception` in a rule set may swallow it)."""


_state = threading.local()
_warned = False


def _can_interrupt() -> bool:
    """Return True when an alarm can interrupt this thread and no guard is running already."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and not getattr(_state, "armed", False)
    )


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise `_Overtime` in the block once the process has spent `seconds` of CPU time in it."""
    armed = [True]

    def ring(signum: int, frame: object) -> None:
        if armed[0]:
            raise _Overtime

    previous = signal.signal(signal.SIGPROF, ring)
    _state.armed = True
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        try:
            yield
        finally:
            armed[0] = False  # an alarm from here on is ignored; one just before still counts as overtime
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        _state.armed = False


class TimeGuard(DocumentFilter):
    """`rules` judged with at most `max_seconds` of CPU time per document; a document that takes longer is
    quarantined with the reason "<rule set>:time_limit" (see the module's docstring)."""

    def __init__(self, rules: DocumentFilter, max_seconds: float) -> None:
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        self.rules = rules
        self.name = rules.name
        self.max_seconds = max_seconds

    def check_batch(self, texts: list[str], paths: list[str | None] | None = None) -> list[str | None]:
        """Return the rule set's verdicts; a document over the limit gets `Quarantined(...)`."""
        if not _can_interrupt():
            _warn_unguarded()
            return self.rules.check_batch(texts, paths)
        if len(texts) > 1:
            try:
                with _alarm(self.max_seconds):
                    return self.rules.check_batch(texts, paths)
            except _Overtime:
                pass  # verdicts are per document: find the one that takes too long
        verdicts: list[str | None] = []
        for i, text in enumerate(texts):
            try:
                with _alarm(self.max_seconds):
                    verdicts += self.rules.check_batch([text], None if paths is None else [paths[i]])
            except _Overtime:
                logger.warning(
                    f"rule set {self.name!r} spent over {self.max_seconds} CPU seconds on one document "
                    f"({len(text)} characters): quarantined"
                )
                verdicts.append(Quarantined(self.reason(TIME_LIMIT)))
        return verdicts


def guarded(rules: DocumentFilter, max_seconds: float) -> DocumentFilter:
    """Return `rules` under a `TimeGuard` of `max_seconds` per document, or `rules` itself for 0."""
    return TimeGuard(rules, max_seconds) if max_seconds else rules


def _warn_unguarded() -> None:
    global _warned
    if not _warned and threading.current_thread() is not threading.main_thread():
        _warned = True
        logger.warning(
            "filters run outside the main thread: the per-document time limit cannot interrupt them here"
        )
