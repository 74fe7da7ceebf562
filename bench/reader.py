"""Reader benchmark (issue 6): speed at SpanBERT-large's shape, answer agreement across precisions.

    python bench/reader.py                      # every table; the staged one reads 1,589 questions 3 times
    python bench/reader.py --only staged --only speed --staged-every 2   # issue 16's run
    python bench/reader.py --only staged --only padding --staged-every 4 --questions 24 --threads 1
    python bench/reader.py --quick              # fewer questions, for a smoke test
    python bench/reader.py --device cuda        # the same on a GPU (fp32, bf16, fp16)
    python bench/reader.py --out docs/bench-reader.md

Table 1 (speed): random weights of SpanBERT-large's exact shape (24 layers, hidden 1024, 16
heads, intermediate 4096, the shared 28,996-token cased vocab; built once and cached under
``bench/.cache``), 10 real SQuAD dev passages of ~192 tokens per question. Per-question latency
of the naive fp32 loop (one passage per forward pass, as the old transformers pipeline read) and
of ``docqa.reader.Reader`` in each precision, with ratios to the naive loop measured in the same
run and the achieved GFLOP/s against matmul peaks measured in the same run.

Table 2 (answers): the shared real QA model (``../shared/models/minilm-squad-proxy``) on the
gold paragraphs of SQuAD dev articles 40-47, which it never saw: how often each precision's top
answer equals fp32's, and its EM/F1.

Table 3 (staged, issue 16): ``ask`` reads a question's top passages first and the rest only when
they could change its top answer. On the proxy, as ``docqa eval`` asks (whole SQuAD dev indexed,
questions of articles 40-47, 10 passages): passages read, top answers against reading all 10,
EM/F1. Run with the speed table, it adds a row reading as ``ask`` would at the share of questions
the proxy read on for.

Table 4 (padding, issue 16): passages retrieved from a real index differ in length, so a batch
padded to its longest window carries padding. ``ask``'s reading of them (top 4 passages, then the
other 6) with each stage's windows in length-grouped batches (``reader.length_batches``, the
default on a CPU) against one batch padded to its longest window (before), taking turns question
by question, for the proxy and the SpanBERT-large shape (with the naive fp32 loop over the same
passages).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa.api import READ_STAGES  # noqa: E402
from docqa.datasets import Question, load_squad, questions_of  # noqa: E402
from docqa.evaluate import best_over_golds, ensure_index, exact_match, f1, index_settings  # noqa: E402
from docqa.rank import DEFAULT_MU, could_change  # noqa: E402
from docqa.reader import Reader, _plan_windows, best_per_location, length_batches  # noqa: E402
from docqa.types import Context, Hit  # noqa: E402

SHARED = ROOT.parent / "shared"
SQUAD = SHARED / "data" / "squad" / "dev-v1.1.json"
CASED_VOCAB = SHARED / "data" / "tokenizers" / "bert-base-cased"
PROXY = SHARED / "models" / "minilm-squad-proxy"
CACHE = ROOT / "bench" / ".cache"
LARGE = dict(vocab_size=28996, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
             intermediate_size=4096, max_position_embeddings=512, type_vocab_size=2)
PASSAGES, PASSAGE_TOKENS = 10, 192


# -- inputs ----------------------------------------------------------------------------------------


def large_random_model() -> Path:
    """SpanBERT-large-shaped random weights + the cased tokenizer, saved once."""
    folder = CACHE / "spanbert-large-random"
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    print(f"building {folder} (once)...", file=sys.stderr)
    torch.manual_seed(0)
    BertForQuestionAnswering(BertConfig(**LARGE)).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(CASED_VOCAB), do_lower_case=False).save_pretrained(str(folder))
    return folder


def context(text: str, start: int = 0, passage_id: int = 0) -> Context:
    hit = Hit(rank=1, score=1.0, passage_id=passage_id, path="squad.txt", page=1, last_page=1,
              start=start, end=start + len(text), text=text)
    return Context(hit=hit, text=text, start=start)


def speed_workload(n: int, tokenizer_dir: Path) -> list[tuple[str, list[Context]]]:
    """``n`` questions, each with 10 SQuAD dev passages cut to ~192 tokens (its gold one first)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    articles = load_squad(SQUAD)
    paragraphs = [p for a in articles for p in a.text.split("\n\n")]
    cut = {}
    for p in paragraphs:
        enc = tok(p, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        if len(enc["input_ids"]) >= PASSAGE_TOKENS:
            cut[p] = p[: enc["offset_mapping"][PASSAGE_TOKENS - 1][1]]
    pool = list(cut.values())
    work = []
    for i, q in enumerate(q for q in questions_of(articles) if q.paragraph in cut):
        if len(work) == n:
            break
        if i % 50:  # spread the questions over the dataset
            continue
        others = [pool[(i + 97 * k) % len(pool)] for k in range(1, PASSAGES)]
        work.append((q.question, [context(t, passage_id=k) for k, t in enumerate([cut[q.paragraph], *others])]))
    return work


# -- timing ----------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    latencies: list[float]
    gflop: float  # per question
    load_s: float = 0.0
    peak: float = 0.0  # GFLOP/s of the matching matmul

    @property
    def mean(self) -> float:
        """What a question costs on average: the figure to compare when questions differ in work
        (staged reading reads on for some questions only, so its median is a question that did not)."""
        return statistics.mean(self.latencies)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p90(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def window_gflop(lengths: Sequence[int], cfg: dict) -> float:
    """Forward-pass FLOPs of BERT over windows of these lengths (matmuls only)."""
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    per_layer = sum(2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h for n in lengths)
    return layers * per_layer / 1e9


def time_interleaved(readers: Sequence[Callable[[str, list[Context]], object]],
                     work: Sequence[tuple[str, list[Context]]]) -> list[list[float]]:
    """Per-question latencies of each reader, taking turns question by question so that a noisy
    machine slows every reader alike (ratios stay fair)."""
    for read in readers:
        read(*work[0])  # warm-up: kernel selection, first-touch allocations
    out: list[list[float]] = [[] for _ in readers]
    for n, (question, contexts) in enumerate(work):
        for r in [*range(n % len(readers), len(readers)), *range(n % len(readers))]:  # rotate who goes first
            started = time.perf_counter()
            readers[r](question, contexts)
            out[r].append(time.perf_counter() - started)
    return out


def naive_reader(model_dir: Path, device: str) -> tuple[Callable[[str, list[Context]], object], float]:
    """fp32, one passage per forward pass, numpy outer-product decoding: what transformers'
    old question-answering pipeline did."""
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
    load_s = time.perf_counter() - started

    def read(question: str, contexts: list[Context]) -> list[tuple[float, int, int]]:
        best = []
        for c in contexts:
            enc = tok(question, c.text, truncation="only_second", max_length=384, stride=128,
                      return_overflowing_tokens=True, return_offsets_mapping=True, return_tensors="pt")
            with torch.inference_mode():
                out = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                            token_type_ids=enc["token_type_ids"].to(device))
            for w in range(enc["input_ids"].shape[0]):
                ctx = np.array([s == 1 for s in enc.sequence_ids(w)])
                s = np.where(ctx, out.start_logits[w].float().cpu().numpy(), -1e9)
                e = np.where(ctx, out.end_logits[w].float().cpu().numpy(), -1e9)
                length = len(s)
                band = np.triu(np.ones((length, length), dtype=bool)) & np.tril(np.ones((length, length), dtype=bool), 29)
                scores = np.where(band, s[:, None] + e[None, :], -np.inf)
                k = int(scores.argmax())
                best.append((float(scores.flat[k]), *divmod(k, scores.shape[1])))
        return best

    return read, load_s


def matmul_peaks(device: str) -> dict[str, float]:
    """GFLOP/s of a layer-sized matmul (2048x1024 @ 1024x4096) per precision, on this machine now: the
    best of torch's matmul and (on a CPU) oneDNN's Linear on weights laid out once, as the reader runs."""
    import torch

    a, b = torch.randn(2048, 1024, device=device), torch.randn(1024, 4096, device=device)
    flop = 2 * 2048 * 1024 * 4096 / 1e9
    ab, bb = a.bfloat16(), b.bfloat16()
    runs: dict[str, list[Callable[[], object]]] = {"fp32": [lambda: a @ b], "bf16": [lambda: ab @ bb]}
    if device == "cpu":  # and as the reader runs them, oneDNN's Linear on weights laid out once
        mkldnn = torch.ops.mkldnn
        for name, (x, w) in {"fp32": (a, b), "bf16": (ab, bb)}.items():
            packed = mkldnn._reorder_linear_weight(w.t().contiguous(), x.shape[0])
            runs[name].append(lambda x=x, packed=packed: mkldnn._linear_pointwise(x, packed, None, "none", [], ""))
    if device == "cuda":
        ah, bh = a.half(), b.half()
        runs["fp16"] = [lambda: ah @ bh]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            linear = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(1024, 4096)), {torch.nn.Linear},
                                      dtype=torch.qint8)
        runs["int8"] = [lambda: linear(a)]
    peaks = {}
    for name, ways in runs.items():
        for run in ways:
            with torch.inference_mode():
                for _ in range(5):
                    run()
                if device == "cuda":
                    torch.cuda.synchronize()
                best = float("inf")
                for _ in range(20):
                    started = time.perf_counter()
                    run()
                    if device == "cuda":
                        torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - started)
            peaks[name] = max(peaks.get(name, 0.0), flop / best)
    return peaks


def speed_table(args: argparse.Namespace, open_share: float | None = None) -> tuple[list[Row], dict[str, float], str]:
    """``open_share``: the share of questions the proxy's staged ``ask`` read past its first stage
    (table 3); given, a row reads as ``ask`` does with that share reading on."""
    import torch

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    model_dir = large_random_model()
    work = speed_workload(args.questions, model_dir)
    tok, template = _tokenizer_and_template(model_dir)
    first = READ_STAGES[0]
    # Spread the questions that read on evenly over the run (Bresenham).
    read_on = {q for n, (q, _) in enumerate(work) if open_share is not None
               and int((n + 1) * open_share) > int(n * open_share)}

    def gflop_of(q: str, contexts: list[Context]) -> float:
        return window_gflop([len(w.ids) for w in _plan_windows(tok, template, [q], [contexts], 384, 128).windows],
                            LARGE)

    gflop = statistics.mean(gflop_of(q, c) for q, c in work)
    load_before = load_average()
    peaks = matmul_peaks(args.device)
    naive, naive_load = naive_reader(model_dir, args.device)
    names, loads, precisions, reads = ["naive fp32, one passage per forward pass"], [naive_load], ["fp32"], [naive]
    choices = ["fp32", "bf16", "fp16"] if args.device == "cuda" else ["fp32", "bf16", "int8"]
    for precision, pack in [("auto", False), *((p, True) for p in choices), ("auto", True)]:
        if not pack and args.device != "cpu":
            continue  # weights are packed on a CPU only
        reader = Reader(model=str(model_dir), device=args.device, precision=precision, threads=args.threads,
                        pack_weights=pack)
        reader.load()
        names.append(f"docqa {precision}" + (f" (= {reader.precision})" if precision == "auto" else "") + ", batched"
                     + ("" if pack else f", {UNPACKED}"))
        loads.append(reader.load_s)
        precisions.append(reader.precision)
        reads.append(lambda q, c, reader=reader: reader.read([q], [c]))
    gflops = [gflop] * len(names)
    if open_share is not None:
        names.append(f"docqa auto (= {reader.precision}), staged as `ask` reads: {first} passages, the other "
                     f"{PASSAGES - first} for {100 * open_share:.0f}% of questions")
        loads.append(reader.load_s)
        precisions.append(reader.precision)
        gflops.append(statistics.mean(gflop_of(q, c[:first]) + (gflop_of(q, c[first:]) if q in read_on else 0)
                                      for q, c in work))
        reads.append(lambda q, c, reader=reader: staged_read(reader, q, c, q in read_on))
    latencies = time_interleaved(reads, work)
    again = matmul_peaks(args.device)  # the best of two measurements: the machine is shared
    peaks = {k: max(v, again[k]) for k, v in peaks.items()}
    rows = [Row(n, lat, g, load, peaks.get(p, 0.0))
            for n, lat, g, load, p in zip(names, latencies, gflops, loads, precisions)]
    machine = f"{device_name(args.device)}; load average (1/5/15 min) {load_before} before, {load_average()} after"
    return rows, peaks, machine


def staged_read(reader: Reader, question: str, contexts: list[Context], read_on: bool) -> None:
    """``DocQA.read_batch``'s staged reading (with its decision's cost), the decision given: the
    speed workload's passages carry no retrieval scores to decide with."""
    spans = reader.read([question], [contexts[: READ_STAGES[0]]])[0]
    could_change(question, spans, [c.hit for c in contexts], contexts[READ_STAGES[0]:], DEFAULT_MU)
    if read_on:
        reader.read([question], [contexts[READ_STAGES[0]:]])


def _tokenizer_and_template(model_dir: Path) -> tuple[object, object]:
    from docqa.reader import _PairTemplate, _load_tokenizer

    tok = _load_tokenizer(model_dir)
    return tok, _PairTemplate.of(tok)


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "CPU")
    return f"{model}, {torch.get_num_threads()} threads, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"


# -- from the shell: cold `docqa ask` vs handing off to a running `docqa serve` ---------------------

# What a cold `docqa ask` spends its time on, measured inside one fresh process.
PHASES = """
import json, sys, time
t0 = time.perf_counter()
from docqa.api import DocQA
import docqa.cli
t1 = time.perf_counter()
import torch, transformers
from transformers import BertForQuestionAnswering
t2 = time.perf_counter()
qa = DocQA(sys.argv[2], model=sys.argv[1], device=sys.argv[4])
qa.reader.load()
t3 = time.perf_counter()
qa.ask(sys.argv[3])
t4 = time.perf_counter()
print(json.dumps({"docqa": t1 - t0, "torch": t2 - t1, "load": t3 - t2, "ask": t4 - t3}))
"""


@dataclass
class ShellRow:
    model: str
    cold: list[float]
    handoff: list[float]
    phases: dict[str, float]
    same_output: bool
    load_s: float


@contextmanager
def squad_questions(n: int) -> Iterator[tuple[Path, list[str]]]:
    """A temporary index of SQuAD dev articles 40-47 (as text files), and ``n`` of their questions
    spread over them."""
    import tempfile

    from docqa import DocQA

    articles = load_squad(SQUAD, slice(40, 48))
    questions = [q.question for q in questions_of(articles)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "articles"
        folder.mkdir()
        for a in articles:
            (folder / f"{a.index}.txt").write_text(a.text, encoding="utf-8")
        with DocQA(Path(tmp) / "squad.db") as qa:
            qa.index([folder])
        yield Path(tmp) / "squad.db", questions[:: max(1, len(questions) // n)][:n]


def shell_models(args: argparse.Namespace) -> list[tuple[str, Path]]:
    proxy = [("minilm-squad-proxy", PROXY)]
    return proxy if args.proxy_only else [*proxy, ("SpanBERT-large shape", large_random_model())]


def _wall(command: list[str]) -> tuple[float, str]:
    import subprocess

    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return time.perf_counter() - started, out.stdout


@contextmanager
def serving(index: Path, model: Path, device: str) -> Iterator[float]:
    """A `docqa serve` process on ``index``; yields once its model is loaded (with its load time)."""
    import json
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "docqa", "serve", "-i", str(index), "--model", str(model),
                               "--device", device, "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if json.load(r)["status"] == "ready":
                        break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("docqa serve exited while starting") from None
            time.sleep(0.2)
        yield time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(60)


def shell_table(args: argparse.Namespace) -> tuple[list[ShellRow], str]:
    """Whole `docqa ask` processes, cold (--no-server) and handing off to a warm `docqa serve`,
    taking turns question by question; and where a cold one spends its time."""
    import json
    import subprocess

    rows = []
    load_before = load_average()
    with squad_questions(args.shell_runs) as (index, picked):
        for name, model in shell_models(args):
            ask = [sys.executable, "-m", "docqa", "ask", "-i", str(index), "--model", str(model),
                   "--device", args.device]
            phases = [json.loads(subprocess.run([sys.executable, "-c", PHASES, str(model), str(index), q, args.device],
                                                capture_output=True, text=True, cwd=ROOT, check=True).stdout)
                      for q in picked[:2]]
            cold, handoff, same = [], [], True
            with serving(index, model, args.device) as load_s:
                for n, question in enumerate(picked):
                    pair = [[*ask, question, "--no-server"], [*ask, question]]
                    timed = [_wall(c) for c in (pair if n % 2 else pair[::-1])]
                    (c_s, c_out), (h_s, h_out) = timed if n % 2 else timed[::-1]
                    cold.append(c_s)
                    handoff.append(h_s)
                    same &= c_out == h_out
            rows.append(ShellRow(name, cold, handoff, {k: statistics.median(p[k] for p in phases) for k in phases[0]},
                                 same, load_s))
    return rows, f"{device_name(args.device)}; load average {load_before} before, {load_average()} after"


def batch_table(args: argparse.Namespace) -> tuple[list[tuple[str, float, float]], int, str]:
    """Questions/s of one `ask_batch` of N questions against N single `ask`s, per model, on the
    SQuAD index (10 passages per question); singles, batch, singles again (noise shows)."""
    from docqa import DocQA

    rows = []
    load_before = load_average()
    with squad_questions(args.batch) as (index, picked):
        for name, model in shell_models(args):
            with DocQA(index, model=str(model), device=args.device, threads=args.threads) as qa:
                qa.ask(picked[0])  # load and warm up
                singles = []
                for turn in ("single", "batch", "single"):
                    started = time.perf_counter()
                    if turn == "batch":
                        qa.ask_batch(picked)
                        batch_s = time.perf_counter() - started
                    else:
                        for q in picked:
                            qa.ask(q)
                        singles.append(time.perf_counter() - started)
                rows.append((name, len(picked) / statistics.mean(singles), len(picked) / batch_s))
    return rows, len(picked), f"load average {load_before} before, {load_average()} after"


# -- answers ---------------------------------------------------------------------------------------


def answer_table(args: argparse.Namespace) -> tuple[list[tuple[str, float, float, float, float, float]], int]:
    """Rows of (precision, agreement with fp32 %, EM, F1, s/question, load s) on the proxy model,
    and the number of questions."""
    questions: list[Question] = questions_of(load_squad(SQUAD, slice(40, 48)))
    if args.quick:
        questions = questions[::5]
    contexts = [[context(q.paragraph, q.paragraph_start)] for q in questions]
    precisions = ["fp32", "bf16", "fp16"] if args.device == "cuda" else ["fp32", "bf16", "int8"]
    reference: list[str] | None = None  # the first row's answers: fp32 as torch runs it
    rows = []
    for precision, pack in [("fp32", False), *((p, True) for p in precisions), ("auto", True)]:
        if not pack and args.device != "cpu":
            continue  # weights are packed on a CPU only
        reader = Reader(model=str(PROXY), device=args.device, precision=precision, threads=args.threads,
                        pack_weights=pack)
        reader.load()
        started = time.perf_counter()
        spans = []
        for first in range(0, len(questions), 64):  # batches of questions, as `docqa eval` reads
            spans += reader.read([q.question for q in questions[first : first + 64]], contexts[first : first + 64])
        per_question = (time.perf_counter() - started) / len(questions)
        texts = [s[0].text if s else "" for s in spans]
        reference = texts if reference is None else reference
        agree = 100 * statistics.mean(a == b for a, b in zip(texts, reference))
        em = 100 * statistics.mean(best_over_golds(exact_match, t, q.answers) for t, q in zip(texts, questions))
        f = 100 * statistics.mean(best_over_golds(f1, t, q.answers) for t, q in zip(texts, questions))
        label = precision + (f" (= {reader.precision})" if precision == "auto" else "") + ("" if pack else f", {UNPACKED}")
        rows.append((label, agree, em, f, per_question, reader.load_s))
        del reader
        gc.collect()
    return rows, len(questions)


UNPACKED = "torch's Linear: weights laid out again every pass (before)"
PADDED_BF16 = "staged, bf16, each stage one batch padded to its longest window (before)"


@dataclass
class StagedRow:
    name: str
    passages: float  # read per question
    top_same: float  # % of questions whose top answer is reading-all-in-fp32's
    em: float
    f1: float
    read_s: float  # per question


def staged_table(args: argparse.Namespace) -> tuple[list[StagedRow], int, float, str]:
    """Rows for reading all 10 passages (fp32) and ``ask``'s staged reading (fp32 and bf16) on
    the proxy, as ``docqa eval`` asks; the number of questions; the share of questions the
    staged fp32 reading read past its first stage; the load average."""
    import math

    from docqa import DocQA

    load_before = load_average()
    index = ensure_index(SQUAD, load_squad(SQUAD), index_settings(), CACHE / "squad-dev.db")
    questions = questions_of(load_squad(SQUAD, slice(40, 48)))[:: args.staged_every]
    runs = {"all 10 passages, fp32": ("fp32", None), "staged, fp32": ("fp32", DEFAULT_MU),
            "staged, bf16": ("bf16", DEFAULT_MU), PADDED_BF16: ("bf16", DEFAULT_MU)}
    readings: dict[str, list] = {name: [] for name in runs}
    seconds = dict.fromkeys(runs, 0.0)
    qas = {name: DocQA(index, model=str(PROXY), device=args.device, precision=precision, threads=args.threads)
           for name, (precision, _) in runs.items()}
    qas[PADDED_BF16].reader.pass_tokens = math.inf  # each batch padded to its longest window, as before
    for qa in qas.values():
        qa.read_batch([questions[0].question])  # load and warm up
    for first in range(0, len(questions), 64):  # the readings take turns, 64 questions at a time
        batch = [q.question for q in questions[first : first + 64]]
        for name, (_, mu) in runs.items():
            started = time.perf_counter()
            readings[name] += qas[name].read_batch(batch, mu=mu)
            seconds[name] += time.perf_counter() - started
    rows, tops = [], {}
    for name, qa in qas.items():
        top = [qa.rank(r, threshold=-math.inf).answers for r in readings[name]]
        tops[name] = [a[0].text if a else "" for a in top]
        shown = [qa.rank(r) for r in readings[name]]
        texts = ["" if a.abstained else a.answers[0].text for a in shown]
        rows.append(StagedRow(
            name=name,
            passages=statistics.mean(len({s.context.hit.passage_id for s in r.spans}) for r in readings[name]),
            top_same=100 * statistics.mean(a == b for a, b in zip(tops[name], tops["all 10 passages, fp32"])),
            em=100 * statistics.mean(best_over_golds(exact_match, t, q.answers) for t, q in zip(texts, questions)),
            f1=100 * statistics.mean(best_over_golds(f1, t, q.answers) for t, q in zip(texts, questions)),
            read_s=seconds[name] / len(questions),
        ))
        qa.close()
    first_stage = READ_STAGES[0]
    open_share = statistics.mean(len({s.context.hit.passage_id for s in r.spans}) > first_stage
                                 for r in readings["staged, fp32"])
    return rows, len(questions), open_share, f"{device_name(args.device)}; load average {load_before} before, {load_average()} after"


@dataclass
class PadRow:
    model: str
    reader: str
    latencies: list[float]
    padding: float  # % of the tokens fed to the model that are padding
    passes: float  # forward passes per question
    same_top: float | None  # % of questions whose top span is the one-padded-batch reading's


def staged_all(reader: Reader, question: str, contexts: list[Context], out: dict[str, list]) -> None:
    """Read as ``ask`` does when it reads on: the first stage, then the rest; spans into ``out``."""
    first = READ_STAGES[0]
    out[question] = best_per_location([*reader.read([question], [contexts[:first]])[0],
                                       *reader.read([question], [contexts[first:]])[0]])


def padding_table(args: argparse.Namespace) -> tuple[list[PadRow], int, str]:
    """Rows for ``ask``'s reading of real retrieved passages, grouped by length or padded as
    before (and the naive loop for the large shape); the number of questions; the machine."""
    import torch

    from docqa import DocQA

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    load_before = load_average()
    index = ensure_index(SQUAD, load_squad(SQUAD), index_settings(), CACHE / "squad-dev.db")
    questions = questions_of(load_squad(SQUAD, slice(40, 48)))
    picked = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    with DocQA(index) as qa:
        work = [(q.question, [qa._context(h) for h in qa.search(q.question, k=PASSAGES).hits]) for q in picked]
    first = READ_STAGES[0]
    rows = []
    for name, model in [("minilm-squad-proxy", PROXY), ("SpanBERT-large shape", large_random_model())]:
        kinds = {"one batch per stage, padded to its longest window (before)": math.inf,
                 "length-grouped batches": None}
        readers = {label: Reader(model=str(model), device=args.device, threads=args.threads, pass_tokens=p)
                   for label, p in kinds.items()}
        found: dict[str, dict[str, list]] = {label: {} for label in readers}
        for r in readers.values():
            r.load()
        reads = [lambda q, c, r=r, out=found[label]: staged_all(r, q, c, out) for label, r in readers.items()]
        labels = [f"docqa {r.precision}, {label}" for label, r in readers.items()]
        if model != PROXY:
            naive, _ = naive_reader(model, args.device)
            reads.insert(0, naive)
            labels.insert(0, "naive fp32, one passage per forward pass")
        latencies = time_interleaved(reads, work)
        if model != PROXY:
            rows.append(PadRow(name, labels[0], latencies.pop(0), 0.0, PASSAGES, None))
        before = found[next(iter(readers))]
        for (label, r), text, lat in zip(readers.items(), labels[-len(readers):], latencies):
            real = padded = passes = 0
            for q, c in work:
                for part in (c[:first], c[first:]):
                    lengths = sorted((len(w.ids) for w in _plan_windows(r._tokenizer, r._template, [q], [part],
                                                                         r.max_seq_len, r.doc_stride).windows),
                                     reverse=True)
                    batches = length_batches(lengths, r.batch_size, r.pass_tokens)
                    real += sum(lengths)
                    padded += sum(len(b) * lengths[b.start] for b in batches)
                    passes += len(batches)
            same = 100 * statistics.mean(
                [(s.start, s.end) for s in found[label][q][:1]] == [(s.start, s.end) for s in before[q][:1]]
                for q, _ in work)
            rows.append(PadRow(name, text, lat, 100 * (padded - real) / padded, passes / len(work), same))
        del readers
        gc.collect()
    return rows, len(work), f"{device_name(args.device)}; load average {load_before} before, {load_average()} after"


# -- report ----------------------------------------------------------------------------------------


def render(speed: tuple[list[Row], dict[str, float], str] | None, answers: tuple[list[tuple], int] | None,
           command: str) -> str:
    out = [
        "# Reader speed and precision benchmark",
        "",
        f"Issue 6. Reproduce with `{command}` (`--device cuda` on a GPU; `--quick` for a short run).",
        "Speed: SpanBERT-large-shaped random weights built from a config with the shared cased vocab,",
        "real SQuAD dev passages; the readers take turns question by question, so the ratios are fair",
        "on a shared machine even when absolute times are not. Answers: the shared real QA model.",
        "`--precision auto` picks bf16 on CPUs with AMX-BF16/AVX512-BF16 and on CUDA (fp16 where bf16",
        "is unsupported), fp32 otherwise and for models under 50M parameters; never int8 (it changes",
        "answers, table 2). bf16 keeps the span head in fp32.",
        "",
    ]
    if speed:
        rows, peaks, device = speed
        naive = rows[0].mean
        out += [
            f"### Speed: SpanBERT-large shape, random weights, {PASSAGES} SQuAD passages of ~{PASSAGE_TOKENS} "
            f"tokens per question ({len(rows[0].latencies)} questions)",
            "",
            f"Device: {device}. Work per question: {rows[0].gflop:,.0f} GFLOP. Matmul peaks measured in this run "
            "(2048x1024 @ 1024x4096): " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peaks.items()) + ".",
            "",
            ("Speed-up and GFLOP/s are of the mean time a question took (the staged row's questions differ "
             "in work)."),
            "",
            ("| reader | mean s/question | median s | p90 s | speed-up vs naive | GFLOP/s | % of its matmul peak "
             "| load s |"),
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            rate = r.gflop / r.mean
            share = f"{100 * rate / r.peak:.0f}%" if r.peak else "-"
            out.append(f"| {r.name} | {r.mean:.2f} | {r.median:.2f} | {r.p90:.2f} | {naive / r.mean:.1f}x | "
                       f"{rate:,.0f} | {share} | {r.load_s:.1f} |")
        out.append("")
    if answers:
        rows, n = answers
        out += [
            f"### Answers: minilm-squad-proxy, gold paragraphs of SQuAD dev articles 40-47 ({n} questions)",
            "",
            "| precision | top answer = fp32's | EM | F1 | ms/question (batched) | load s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        out += [f"| {p} | {a:.1f}% | {em:.1f} | {f:.1f} | {1000 * s:.1f} | {load:.1f} |" for p, a, em, f, s, load in rows]
        out.append("")
    return "\n".join(out)


def render_shell(shell: tuple[list[ShellRow], str]) -> str:
    rows, machine = shell
    out = [
        f"### From the shell: whole `docqa ask` processes, cold vs handing off to `docqa serve` "
        f"({len(rows[0].cold)} questions each)",
        "",
        f"SQuAD dev articles 40-47 indexed, 10 passages per question; the two kinds take turns. {machine}.",
        "Cold = `docqa ask --no-server` (imports torch, loads the model, reads); hand-off = `docqa ask` while a",
        "`docqa serve` on the same index and model runs (no torch imported). The phases of a cold ask are",
        "measured inside one fresh process (median of 2).",
        "",
        "| model | cold `docqa ask` s | hand-off `docqa ask` s | speed-up | same output | cold: python + docqa | "
        "import torch + transformers | load model | ask (retrieve + read) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        cold, handoff = statistics.median(r.cold), statistics.median(r.handoff)
        p = r.phases
        out.append(f"| {r.model} | {cold:.2f} | {handoff:.2f} | {cold / handoff:.1f}x | {'yes' if r.same_output else 'NO'} | "
                   f"{p['docqa']:.2f} | {p['torch']:.2f} | {p['load']:.2f} | {p['ask']:.2f} |")
    out.append("")
    return "\n".join(out)


def render_batch(batch: tuple[list[tuple[str, float, float]], int, str]) -> str:
    rows, n, load = batch
    out = [
        f"### Batch throughput: one `ask_batch` of {n} questions vs {n} single `ask`s ({load})",
        "",
        "SQuAD index as above, 10 passages per question, model loaded and warm; singles, batch, singles",
        "again (the singles' mean is the baseline).",
        "",
        "| model | single asks, questions/s | `ask_batch`, questions/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    out += [f"| {name} | {one:.2f} | {many:.2f} | {many / one:.2f}x |" for name, one, many in rows]
    return "\n".join([*out, ""])


def render_staged(staged: tuple[list[StagedRow], int, float, str]) -> str:
    rows, n, open_share, machine = staged
    out = [
        f"### Reading less in `ask`: minilm-squad-proxy, {n} questions of SQuAD dev articles 40-47, "
        "10 passages each",
        "",
        f"Whole SQuAD dev indexed, as `docqa eval` asks; {machine}. Staged = `ask`'s reading: the top "
        f"{READ_STAGES[0]} passages, then the rest only when they could change the top answer "
        f"({100 * open_share:.0f}% of questions in fp32). EM/F1 as `docqa eval` scores them (abstaining counts "
        "as wrong); passages read = passages with a span.",
        "",
        "| reading | passages read per question | top answer = reading all 10 in fp32 | EM | F1 | read s/question |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    out += [f"| {r.name} | {r.passages:.2f} | {r.top_same:.1f}% | {r.em:.1f} | {r.f1:.1f} | {r.read_s:.3f} |"
            for r in rows]
    return "\n".join([*out, ""])


def render_padding(padding: tuple[list[PadRow], int, str]) -> str:
    rows, n, machine = padding
    out = [
        f"### Padding: `ask`'s reading of retrieved passages, {n} questions of SQuAD dev articles 40-47",
        "",
        f"Whole SQuAD dev indexed; each question's top {PASSAGES} passages read as `ask` reads them when it "
        f"reads on (top {READ_STAGES[0]}, then the other {PASSAGES - READ_STAGES[0]}); the readers take turns "
        f"question by question. {machine}.",
        "",
        "| model | reader | median s/question | p90 s | vs one padded batch | vs naive | padding, % of tokens | "
        "forward passes per question | top span = one padded batch's |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        group = [x for x in rows if x.model == r.model]
        base = next(x for x in group if x.same_top is not None)
        naive = next((x for x in group if x.same_top is None), None)
        median = statistics.median(r.latencies)
        out.append(f"| {r.model} | {r.reader} | {median:.3f} | {Row('', r.latencies, 0).p90:.3f} | "
                   f"{statistics.median(base.latencies) / median:.2f}x | "
                   + (f"{statistics.median(naive.latencies) / median:.1f}x" if naive else "-")
                   + f" | {r.padding:.1f}% | {r.passes:.1f} | "
                   + ("-" if r.same_top is None else f"{r.same_top:.0f}%") + " |")
    return "\n".join([*out, ""])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--questions", type=int, default=12, help="questions timed per reader (default 12)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="3 timed questions, a fifth of the answer set, 2 shell runs, a batch of 10")
    parser.add_argument("--only", choices=["speed", "answers", "staged", "shell", "padding"], action="append",
                        help="run this table only (repeatable; shell: cold/hand-off `docqa ask` and batch "
                             "throughput; staged: `ask` reading less, and with speed its row there; "
                             "padding: length-grouped batches on retrieved passages)")
    parser.add_argument("--staged-every", type=int, default=1,
                        help="the staged table asks every Nth question of articles 40-47 (default 1: all)")
    parser.add_argument("--shell-runs", type=int, default=4, help="questions per model in the shell table")
    parser.add_argument("--batch", type=int, default=50, help="questions in the batch-throughput table")
    parser.add_argument("--proxy-only", action="store_true", help="shell tables for the proxy model only")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.shell_runs, args.batch = min(args.questions, 3), 2, 10
        args.staged_every = max(args.staged_every, 20)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "python " + " ".join(["bench/reader.py", *(argv if argv is not None else sys.argv[1:])])

    def wanted(table: str) -> bool:
        return args.only is None or table in args.only

    staged = staged_table(args) if wanted("staged") and PROXY.is_dir() else None
    speed = speed_table(args, staged[2] if staged else None) if wanted("speed") else None
    if speed:
        print(render(speed, None, command), flush=True)
    answers = answer_table(args) if wanted("answers") and PROXY.is_dir() else None
    text = render(speed, answers, command)
    if answers:
        print(render(None, answers, command))
    if staged:
        text += "\n" + (printed := render_staged(staged))
        print(printed, flush=True)
    if wanted("padding") and PROXY.is_dir():
        text += "\n" + (printed := render_padding(padding_table(args)))
        print(printed, flush=True)
    if wanted("shell") and PROXY.is_dir():
        for table in (lambda: render_shell(shell_table(args)), lambda: render_batch(batch_table(args))):
            text += "\n" + (printed := table())
            print(printed, flush=True)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
