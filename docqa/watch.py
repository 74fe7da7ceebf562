"""``docqa watch``: keep an index in sync with folders as their files change.

Changes come from the OS (watchfiles: inotify, FSEvents, ...). A burst of them (an editor's
save, a folder copied in, a ``git checkout``) is gathered into one batch, and a batch waits
until every file in it has been quiet for ``quiet_s``, so a file still being written is not read
half-way. Each batch is then one ordinary indexing run over the watched paths (``DocQA.index``):
the same incremental rules (unchanged files are only stat'ed; moved files reuse their text), the
same single-writer lock and the same statuses as ``docqa index``. A run that finds the lock held
(a ``docqa index`` in another terminal) waits for the next chance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import watchfiles

from docqa.api import DocQA
from docqa.errors import DocQAError, IndexLocked
from docqa.types import FileResult, IndexReport

QUIET_S = 1.0  # a file modified more recently than this is taken to be still being written
STEP_MS = 300  # a batch closes after this long without a new change...
DEBOUNCE_MS = 2_000  # ...or after this long in all
WAKE_MS = 500  # how often to look again at a batch that waits for a file to go quiet
EVENTS = ("indexed", "updated", "removed")  # statuses that are news every time they happen


class Watcher:
    """Runs ``qa.index(paths)`` on start and after every batch of changes; ``say`` gets one line
    per change (a file indexed, updated, removed, or whose problem changed)."""

    def __init__(self, qa: DocQA, paths: Sequence[str | os.PathLike[str]], *, say: Callable[[str], None],
                 quiet_s: float = QUIET_S, **index_options: Any) -> None:
        self.qa = qa
        self.paths = [Path(os.path.expanduser(os.fspath(p))).absolute() for p in paths]
        self.say = say
        self.quiet_s = quiet_s
        self.index_options = index_options
        self._problems: dict[str, tuple[str, str]] = {}  # path -> the problem last reported

    def run(self, stop_event: Any = None) -> None:
        """Index, then watch until Ctrl-C (KeyboardInterrupt) or ``stop_event`` is set."""
        ignore = [str(self.qa.index_path.absolute())]  # the index, its -wal and .lock files
        pending: set[str] = set()
        started = False
        for changes in watchfiles.watch(
            *self.paths, watch_filter=_Filter(ignore_paths=ignore), step=STEP_MS, debounce=DEBOUNCE_MS,
            stop_event=stop_event, yield_on_timeout=True, rust_timeout=WAKE_MS,
        ):
            if not started:
                # The first yield comes once the OS watches are in place: indexing only now
                # means a file changed at any moment is either in this run or in the next batch.
                started = True
                if not self._index():
                    return
                self.say(f"watching {', '.join(map(str, self.paths))} (Ctrl-C to stop)")
                continue
            pending.update(path for _, path in changes)
            if not pending or self._being_written(pending):
                continue
            pending.clear()
            if not self._index():
                return

    def _being_written(self, paths: set[str]) -> bool:
        now = time.time()
        for path in paths:
            try:
                if now - os.stat(path).st_mtime < self.quiet_s:
                    return True
            except OSError:  # gone (deleted, moved away): nothing to wait for
                continue
        return False

    def _index(self) -> bool:
        """One indexing run; False when it was interrupted (Ctrl-C): stop watching."""
        try:
            report = self.qa.index(self.paths, **self.index_options)
        except IndexLocked as err:
            self.say(f"waiting: {err}")
            return True
        except DocQAError as err:  # e.g. a watched folder was deleted; say so, keep watching
            self.say(f"error: {err}")
            return True
        self._report(report)
        return not report.interrupted

    def _report(self, report: IndexReport) -> None:
        for f in report.files:
            if f.status in EVENTS or self._new_problem(f):
                self.say(f"{f.status:<10} {f.path}" + (f": {f.message}" if f.message else ""))
        if report.interrupted:
            self.say("interrupted: every document listed above is complete")

    def _new_problem(self, f: FileResult) -> bool:
        """A problem status is news once; every run says it again (see Indexer._report_unchanged)."""
        if f.status in ("unchanged", "unsupported"):
            self._problems.pop(f.path, None)
            return False
        known = self._problems.get(f.path)
        self._problems[f.path] = (f.status, f.message)
        return known != (f.status, f.message)


class _Filter(watchfiles.DefaultFilter):
    """Also ignores hidden files (the indexer skips them too)."""

    ignore_entity_patterns = (*watchfiles.DefaultFilter.ignore_entity_patterns, r"^\.")
