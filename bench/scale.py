"""Scaling docqa out with Ray (issue 12): what one machine measures, and what it projects.

    python bench/scale.py [--copies 4] [--rounds 3] [--writer-copies 100] [--questions 96] [--cpus 2]
    python bench/scale.py --only writer          # one part: ray-index, writer or batch

Prints Markdown tables (docs/scale.md holds one run):
  1. Ray's overhead: pages/s of `docqa index` (local worker processes) and `docqa index --ray
     ADDRESS` on a local Ray instance with --cpus CPUs (started once, before timing, as a
     cluster would be), over the same PDFs (the shared multi-column PDFs copied --copies times,
     each copy with distinct bytes), in one run; also `--ray` that starts its own instance.
  2. The single writer's ceiling: the real driver (walk, stat, sha256, plan, one transaction
     per document, FTS5) fed by an executor whose extraction costs nothing (the outcomes were
     extracted beforehand), over --writer-copies copies: pages/s and passages/s.
  3. Batch answering: questions/s of `docqa ask --batch` locally and with `--ray ADDRESS
     --actors --cpus` (the shared MiniLM proxy model, SQuAD dev articles 40-47 as text files).
The Ray instance is a ray.cluster_utils.Cluster started and ended by this script (by pid;
never `ray stop`, which would end every Ray instance on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from index import make_corpus  # noqa: E402  (bench/index.py)

from docqa.indexer import ExtractTask, Indexer, extract_and_split  # noqa: E402
from docqa.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared"
SQUAD = SHARED / "data" / "squad" / "dev-v1.1.json"
PROXY = SHARED / "models" / "minilm-squad-proxy"


def docqa(*args: object, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run `docqa ARGS` (in ``env``, default this process's); (wall seconds, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "docqa", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        sys.exit(f"docqa {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return time.perf_counter() - t0, proc.stdout


def pages_of(report: str) -> int:
    return sum(f["pages"] for f in json.loads(report)["files"])


# -- 1. Ray's overhead ----------------------------------------------------------------------


def ray_overhead(tmp: Path, copies: int, address: str, rounds: int) -> list[str]:
    folder = tmp / "pdfs"
    folder.mkdir()
    files = make_corpus(folder, copies)
    # --no-embed: extraction is compared; embedding (on by default where the dense extra is
    # installed) runs on the driver alike in both, after extraction.
    common = ("index", folder, "-q", "--json", "--no-embed")
    runs = {  # name: (row label, extra arguments, environment)
        "local": ("`docqa index` (local worker processes, all cores)", (), None),
        "ray": ("`docqa index --ray ADDRESS` (Ray instance already running)", ("--ray", address), None),
        "fresh": ("`docqa index --ray` (starts and stops its own instance)", ("--ray",),
                  {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    pages = set()
    # The runs alternate, round after round, so a change in the machine's load (it is shared)
    # hits every run alike; the ratios are each round's, and the table gives their medians.
    for n in range(rounds):
        for name, (_, extra, env) in runs.items():
            s, out = docqa(*common, "-i", tmp / f"{name}{n}.db", *extra, env=env)
            seconds[name].append(s)
            pages.add(pages_of(out))
    assert len(pages) == 1, pages
    total = pages.pop()
    lines = [
        f"{len(files)} PDFs, {total} pages (the shared multi-column PDFs x {copies}), {rounds} rounds, medians",
        "",
        "| run | seconds | pages/s | ratio to local | each round's ratio |",
        "|---|---|---|---|---|",
    ]
    for name, (label, _, _) in runs.items():
        ratios = [a / b for a, b in zip(seconds["local"], seconds[name])]
        lines.append(f"| {label} | {median(seconds[name]):.1f} | {total / median(seconds[name]):.1f} | "
                     f"{median(ratios):.2f} | {', '.join(f'{r:.2f}' for r in ratios)} |")
    return lines


# -- 2. the writer's ceiling ----------------------------------------------------------------


class Preextracted:
    """An executor whose extraction costs nothing: outcomes computed beforehand, by file stem."""

    ship_bytes = 0
    reads_uris = False

    def __init__(self, outcomes: dict[str, object]) -> None:
        self.outcomes = outcomes

    def run(self, jobs: Iterable[tuple[object, ExtractTask]]) -> Iterator[tuple[object, object]]:
        for job, task in jobs:
            yield job, self.outcomes[Path(task.path).stem.rsplit("-", 1)[0]]


def writer_ceiling(tmp: Path, copies: int) -> list[str]:
    folder = tmp / "writer"
    folder.mkdir()
    files = make_corpus(folder, copies)
    originals = {p.stem.rsplit("-", 1)[0]: p for p in files}
    with Store(tmp / "probe.db", create=True) as store:  # the same options as a real run
        options = Indexer(store).options
    outcomes = {stem: extract_and_split(ExtractTask(str(p), options)) for stem, p in originals.items()}
    with Store(tmp / "writer.db", create=True) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        report = Indexer(store, executor=Preextracted(outcomes)).run([folder])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    pages = sum(f.pages for f in report.files)
    passages = sum(f.passages for f in report.files)
    return [
        f"{len(files)} PDFs, {pages} pages, {passages} passages (pre-extracted; the driver still walks, "
        "hashes, plans and writes every file)",
        "",
        "| writer | seconds | documents/s | pages/s | passages/s | CPU s | pages per CPU s |",
        "|---|---|---|---|---|---|---|",
        f"| the driver (`Indexer`), one transaction per document | {seconds:.1f} | {len(files) / seconds:.0f} | "
        f"{pages / seconds:.0f} | {passages / seconds:.0f} | {cpu:.1f} | {pages / cpu:.0f} |",
        "",
        "Where the writer's time goes: `Store.put_document` alone, the 50-page i1040nr.pdf written 60 times "
        "and `optimize`, CPU seconds of this process (the machine is shared), best of 3 rounds:",
        "",
        "| variant | CPU s | pages/s (CPU) |",
        "|---|---|---|",
        *writer_variants(tmp, outcomes["i1040nr"]),
    ]


def writer_variants(tmp: Path, outcome: tuple, copies: int = 60, rounds: int = 3) -> list[str]:
    """put_document as docqa writes (all of a document's passages in one INSERT, FTS5 merging
    lazily, ``optimize`` at the end) against the alternatives: FTS5's default merging, the
    passages in sqlite-utils' 142-row INSERTs (docqa before), ten documents per transaction, and
    no FTS5 triggers (what the full-text index costs). Best of ``rounds`` interleaved rounds."""
    from docqa.store import DocumentRow

    pages, passages = outcome.pages, outcome.passages
    variants = {  # name: (documents per transaction, lazy merging, passages via sqlite-utils, FTS5)
        "docqa: one INSERT per document, lazy FTS5 merging": (1, True, False, True),
        "one INSERT per document, FTS5's default merging": (1, False, False, True),
        "sqlite-utils insert_all (142-row INSERTs), default merging: docqa before": (1, False, True, True),
        "ten documents per transaction, otherwise as docqa": (10, True, False, True),
        "as docqa, FTS5 triggers dropped (no full-text index)": (1, True, False, False),
    }
    best: dict[str, float] = {}
    results: dict[str, list] = {}
    for _ in range(rounds):
        for name, (per, lazy, sqlite_utils, fts) in variants.items():
            db = tmp / "variant.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            with Store(db, create=True) as store:
                if lazy:
                    store.merge_lazily()
                if sqlite_utils:
                    store._insert_passages = lambda doc_id, ps, db=store.db: db["passages"].insert_all(  # type: ignore[method-assign]
                        {"document_id": doc_id, "ordinal": p.ordinal, "page": p.page, "last_page": p.last_page,
                         "start": p.start, "end": p.end, "text": p.text} for p in ps)
                if not fts:
                    for trigger in ("passages_ai", "passages_ad", "passages_au"):
                        store.conn.execute(f"DROP TRIGGER {trigger}")
                t0 = time.process_time()
                for first in range(0, copies, per):
                    with store.db.atomic():  # the outer transaction; put_document's nest as savepoints
                        for n in range(first, min(copies, first + per)):
                            store.put_document(DocumentRow(
                                path=f"{n}.pdf", abs_path=f"/v/{n}.pdf", root="/v", size=1, mtime=0.0,
                                sha256=str(n), kind="pdf", page_count=len(pages), status="indexed", message=""),
                                pages, passages)
                store.optimize()
                best[name] = min(best.get(name, float("inf")), time.process_time() - t0)
                if fts:
                    results[name] = [store.conn.execute(
                        "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
                        "ORDER BY 2, 1 LIMIT 50", (q,)).fetchall() for q in ("income", "tax credit", "resident alien")]
    same = all(r == next(iter(results.values())) for r in results.values())
    lines = [f"| {name} | {cpu:.2f} | {copies * len(pages) / cpu:.0f} |" for name, cpu in best.items()]
    return [*lines, "", f"Search results (bm25 top 50 of 3 queries) identical across the FTS5 variants: {same}"]


# -- 3. batch answering ---------------------------------------------------------------------


def batch_answering(tmp: Path, n: int, address: str, actors: int) -> list[str]:
    from docqa.datasets import load_squad

    articles = load_squad(SQUAD, slice(40, 48))
    folder = tmp / "squad"
    folder.mkdir()
    for a in articles:
        (folder / f"{a.index}.txt").write_text(a.text, encoding="utf-8")
    questions = [q.question for a in articles for q in a.questions]
    random.Random(0).shuffle(questions)
    batch = tmp / "questions.txt"
    batch.write_text("\n".join(questions[:n]) + "\n", encoding="utf-8")
    docqa("index", folder, "-i", tmp / "squad.db", "-q")
    common = ("ask", "--batch", batch, "-i", tmp / "squad.db", "--model", PROXY, "-q")
    local_s, local = docqa(*common)
    ray_s, ray = docqa(*common, "--ray", address, "--actors", actors)
    drop = ("timings",)
    same = [{k: v for k, v in json.loads(a).items() if k not in drop} ==
            {k: v for k, v in json.loads(b).items() if k not in drop}
            for a, b in zip(local.splitlines(), ray.splitlines())]
    return [
        f"{n} SQuAD dev questions (articles 40-47, 8 documents), {PROXY.name}, 10 passages per question",
        "",
        "| run | seconds (whole command, model loads included) | questions/s | ratio to local |",
        "|---|---|---|---|",
        f"| `docqa ask --batch` (one process, all cores) | {local_s:.1f} | {n / local_s:.2f} | 1.00 |",
        f"| `docqa ask --batch --ray ADDRESS --actors {actors}` | {ray_s:.1f} | {n / ray_s:.2f} | "
        f"{local_s / ray_s:.2f} |",
        "",
        f"Ray's answers equal the local ones for {sum(same)} of {len(same)} questions.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="ray-index: local and Ray runs, alternated")
    parser.add_argument("--writer-copies", type=int, default=100)
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--only", choices=["ray-index", "writer", "batch"], default=None)
    args = parser.parse_args()
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the same for the instance and every docqa process
    with tempfile.TemporaryDirectory(prefix="dqs", dir="/tmp") as tmp:
        cluster = None
        if args.only != "writer":
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": args.cpus, "object_store_memory": 512 * 2**20, "include_dashboard": False,
                "temp_dir": str(Path(tmp, "ray"))})
        try:
            parts = {
                "ray-index": lambda: ray_overhead(Path(tmp), args.copies, cluster.address, args.rounds),
                "writer": lambda: writer_ceiling(Path(tmp), args.writer_copies),
                "batch": lambda: batch_answering(Path(tmp), args.questions, cluster.address, args.cpus),
            }
            for name, part in parts.items():
                if args.only in (None, name):
                    print(f"\n### {name}\n")
                    print("\n".join(part()), flush=True)
        finally:
            if cluster is not None:
                cluster.shutdown()
            shutil.rmtree(Path(tmp, "ray"), ignore_errors=True)


if __name__ == "__main__":
    main()
