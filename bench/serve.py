"""`docqa serve` under load (issue 8): throughput with and without batching, in one run.

    python bench/serve.py                      # 200 requests from 8 clients, both modes
    python bench/serve.py --requests 400 --clients 16 --model DIR

The held-out SQuAD v1.1 dev articles 40-47 are indexed as text files; their questions are asked
over HTTP on loopback by ``--clients`` threads (one keep-alive connection each) to two servers in
this process: one batches concurrent questions (``--max-batch``), the other reads them one at a
time (batches of one). Each has its own ``DocQA``, model loaded and warmed before the clock
starts; they take turns (``--rounds``), so both see the same machine. Errors (any non-200) are
counted and must be zero. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from docqa import DocQA  # noqa: E402
from docqa.datasets import load_squad  # noqa: E402
from docqa.server import create_app, running  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
PROXY_MODEL = ROOT.parent / "shared" / "models" / "minilm-squad-proxy"


@dataclass(frozen=True)
class Run:
    mode: str
    max_batch: int
    seconds: float
    requests: int
    errors: int
    latencies: tuple[float, ...]
    batches: int
    largest: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def corpus(folder: Path, first: int, last: int) -> list[str]:
    """Writes the articles as text files; returns their questions."""
    questions = []
    for article in load_squad(SQUAD, slice(first, last + 1)):
        (folder / f"{article.index:02d}.txt").write_text(article.text, encoding="utf-8")
        questions += [q.question for q in article.questions]
    return questions


def load(url: str, questions: Sequence[str], clients: int, passages: int) -> tuple[float, int, list[float]]:
    """Every client sends its share one request at a time; returns (seconds, errors, latencies)."""
    errors, latencies, lock = 0, [], threading.Lock()

    def client(share: Sequence[str]) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=300) as http:
            for q in share:
                t0 = time.perf_counter()
                ok = http.post("/ask", json={"question": q, "passages": passages}).status_code == 200
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    errors += not ok

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, [questions[i::clients] for i in range(clients)]))
    return time.perf_counter() - t0, errors, latencies


def measure(index: Path, model: str, threads: int | None, modes: Sequence[tuple[str, int]],
            questions: Sequence[str], clients: int, passages: int, rounds: int) -> list[Run]:
    """Both servers run side by side and take turns, a slice of the questions per round (the
    order alternating), so drift in the machine's load hits every mode alike."""
    with ExitStack() as stack:
        urls = []
        for _, max_batch in modes:  # one after the other: transformers' lazy imports race in threads
            qa = stack.enter_context(DocQA(index, model=model, threads=threads))
            urls.append(url := stack.enter_context(running(create_app(qa, max_batch=max_batch))))
            _wait_ready(url)
            load(url, questions[:clients], clients, passages)  # warm-up: first calls are slow in torch
        before = [_batching(url) for url in urls]
        totals: list[tuple[float, int, list[float]]] = [(0.0, 0, []) for _ in modes]
        for r in range(rounds):
            share = questions[r::rounds]
            order = range(len(modes)) if r % 2 == 0 else reversed(range(len(modes)))
            for m in order:
                seconds, errors, latencies = load(urls[m], share, clients, passages)
                t, e, lat = totals[m]
                totals[m] = (t + seconds, e + errors, lat + latencies)
        after = [_batching(url) for url in urls]
    return [
        Run(mode, max_batch, t, len(questions), e, tuple(lat), a["batches"] - b["batches"], a["largest"])
        for (mode, max_batch), (t, e, lat), b, a in zip(modes, totals, before, after)
    ]


def _wait_ready(url: str) -> None:
    while (health := httpx.get(f"{url}/health", timeout=60).json())["status"] == "loading":
        time.sleep(0.1)
    if health["status"] != "ready":
        raise SystemExit(f"the server could not load the model: {health['message']}")


def _batching(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/health").json()["batching"]


def table(runs: Sequence[Run], clients: int) -> str:
    lines = [
        "| mode | max batch | requests | clients | errors | seconds | req/s | p50 ms | p95 ms | batches | largest |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lat = sorted(r.latencies)
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        lines.append(
            f"| {r.mode} | {r.max_batch} | {r.requests} | {clients} | {r.errors} | {r.seconds:.1f} | "
            f"{r.throughput:.2f} | {statistics.median(lat) * 1000:.0f} | {p95 * 1000:.0f} | {r.batches} | {r.largest} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("DOCQA_MODEL") or str(PROXY_MODEL))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--passages", type=int, default=10, help="Passages read per question.")
    parser.add_argument("--rounds", type=int, default=4, help="Turns each mode takes (alternating).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores).")
    parser.add_argument("--articles", default="40-47", help="SQuAD dev articles to index (held out).")
    args = parser.parse_args(argv)
    first, last = (int(x) for x in args.articles.split("-"))
    with tempfile.TemporaryDirectory(prefix="docqa-bench-serve-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        pool = corpus(folder, first, last)
        questions = [pool[i % len(pool)] for i in range(args.requests)]
        index = Path(tmp) / "bench.db"
        with DocQA(index) as qa:
            qa.index([folder])
        modes = (("batched", args.max_batch), ("one at a time", 1))
        runs = measure(index, args.model, args.threads, modes, questions, args.clients, args.passages, args.rounds)
    print(f"model {args.model}; {os.cpu_count()} CPUs; {len(pool)} questions over SQuAD dev articles "
          f"{args.articles}; {args.passages} passages read per question\n")
    print(table(runs, args.clients))
    print(f"\nbatched / one at a time: {runs[0].throughput / runs[1].throughput:.2f}x throughput")
    return 1 if any(r.errors for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
