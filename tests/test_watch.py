"""`docqa watch` as a user runs it: a real process watching a real folder, stopped with Ctrl-C.

Files are created, edited, renamed, deleted, saved in a burst and written slowly while it runs;
`search` (another process's read-only view of the index) must see each change within seconds,
nothing may be indexed twice, and a slowly written file must not be indexed half-written.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from docqa import DocQA
from docqa.errors import IndexNotFound

ROOT = Path(__file__).resolve().parent.parent
SEEN_WITHIN_S = 15.0  # generous: the CI machine is shared; typical is 2-3 s (see docs/watch.md)


class Watch:
    """A running `docqa watch` whose stderr lines are collected as they come."""

    def __init__(self, folder: Path, index: Path) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.index = index
        self.proc = subprocess.Popen([sys.executable, "-m", "docqa", "watch", str(folder), "-i", str(index)],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def wait_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no line with {text!r}: {self.lines}"
            try:
                self._new.get(timeout=0.2)
            except queue.Empty:
                pass

    def found(self, words: str) -> list[str]:
        try:
            with DocQA(self.index) as qa:
                return sorted({h.path for h in qa.search(words).hits})
        except IndexNotFound:
            return []

    def until(self, check: Callable[[], bool], what: str) -> float:
        t0 = time.monotonic()
        while not check():
            assert time.monotonic() - t0 < SEEN_WITHIN_S, f"search did not see: {what}; stderr: {self.lines}"
            time.sleep(0.1)
        return time.monotonic() - t0


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[tuple[Path, Watch]]:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "first.txt").write_text("The lighthouse keeper of Vennmark is Orsolya.", encoding="utf-8")
    watch = Watch(folder, tmp_path / "idx" / "watch.db")
    try:
        watch.wait_line("watching")
        yield folder, watch
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait()


def test_watch_follows_creates_edits_renames_deletes_bursts_and_slow_writes(watching) -> None:
    folder, w = watching
    assert w.found("lighthouse Vennmark") == ["first.txt"]
    seen = {}

    (folder / "new.md").write_text("# Harbour\n\nThe harbour master of Quillon is Bertrand.", encoding="utf-8")
    seen["create"] = w.until(lambda: w.found("harbour Quillon") == ["new.md"], "a new file")

    (folder / "first.txt").write_text("The lighthouse keeper of Vennmark is now Tamsin.", encoding="utf-8")
    seen["edit"] = w.until(lambda: w.found("Tamsin") == ["first.txt"] and not w.found("Orsolya"), "an edit")

    os.rename(folder / "new.md", folder / "moved.md")
    seen["rename"] = w.until(lambda: w.found("harbour Quillon") == ["moved.md"], "a rename")

    (folder / "moved.md").unlink()
    seen["delete"] = w.until(lambda: not w.found("harbour Quillon"), "a delete")

    # A burst: five files created, one of them saved three times: one run, each indexed once.
    for i in range(5):
        (folder / f"burst{i}.txt").write_text(f"Burst file number {i} mentions Kestrelwick.", encoding="utf-8")
    for _ in range(3):
        (folder / "burst0.txt").write_text("Burst file number 0 mentions Kestrelwick twice.", encoding="utf-8")
    seen["burst"] = w.until(lambda: len(w.found("Kestrelwick")) == 5, "a burst")

    # A file written slowly (half a second between parts) is indexed once, whole.
    with open(folder / "slow.txt", "w", encoding="utf-8") as f:
        for part in ("The slow ", "file names ", "the ferry ", "captain: ", "Marguerite."):
            f.write(part)
            f.flush()
            time.sleep(0.5)
    seen["slow"] = w.until(lambda: w.found("ferry Marguerite") == ["slow.txt"], "a slow write")
    time.sleep(1.5)  # any further run would show up now

    def status_of(line: str) -> tuple[str, str]:
        status, _, rest = line.partition(" ")
        return status, rest.strip().split(": ")[0]

    events = [status_of(line) for line in w.lines]
    for name in ("new.md", "moved.md", "slow.txt", *(f"burst{i}.txt" for i in range(5))):
        assert events.count(("indexed", name)) == 1, (name, w.lines)
    assert events.count(("updated", "first.txt")) == 1, w.lines
    assert ("updated", "slow.txt") not in events, w.lines  # never read half-written
    assert events.count(("removed", "new.md")) == 1 and events.count(("removed", "moved.md")) == 1
    print("seen after (s):", {k: round(v, 1) for k, v in seen.items()})

    w.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert w.proc.wait(timeout=20) == 0
    time.sleep(0.2)
    assert w.lines[-1] == "stopped watching", w.lines
    assert not any("Traceback" in line for line in w.lines), w.lines
