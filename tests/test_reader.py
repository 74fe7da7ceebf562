"""The reader: loading (offline, cased, errors), windowing, batching, decoding, real answers."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from docqa.errors import ModelError
from docqa.reader import DEFAULT_MODEL, DEFAULT_TOKENIZER, Reader, decode_spans
from docqa.types import Context, Hit
from tinymodels import FactGenerator, cased_tokenizer

from conftest import CASED_VOCAB, PROXY_MODEL, SQUAD

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the hub

LONG = " ".join(
    f"Paragraph {n}: the Denver Broncos played {n} games in Zürich and scored {n * 3} points." for n in range(60)
)


def context(text: str, start: int = 0, path: str = "doc.txt", passage_id: int = 1) -> Context:
    hit = Hit(rank=1, score=1.0, passage_id=passage_id, path=path, page=1, last_page=1, start=start,
              end=start + len(text), text=text)
    return Context(hit=hit, text=text, start=start)


@pytest.fixture(scope="module")
def reader(tiny_model_dir: Path) -> Reader:
    r = Reader(model=str(tiny_model_dir), device="cpu", max_seq_len=128, doc_stride=32)
    r.load()
    return r


# --- decoding --------------------------------------------------------------------------------


def brute_force(start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_len: int, top_n: int,
                segments: np.ndarray) -> list:
    spans = [
        (float(start[s] + end[e]), s, e)
        for s in range(len(start))
        for e in range(s, min(len(start), s + max_len))
        if mask[s] and mask[e] and segments[s] == segments[e]
    ]
    return sorted(spans, reverse=True)[:top_n]


def test_decode_spans_agrees_with_brute_force_on_random_logits() -> None:
    rng = np.random.default_rng(0)
    for case in range(300):
        rows, length = int(rng.integers(1, 5)), int(rng.integers(1, 40))
        max_len, top_n = int(rng.integers(1, 12)), int(rng.integers(1, 8))
        start = rng.normal(size=(rows, length)).astype(np.float32)
        end = rng.normal(size=(rows, length)).astype(np.float32)
        mask = np.zeros((rows, length), dtype=bool)
        for r in range(rows):  # a contiguous context part, possibly empty
            a = int(rng.integers(0, length + 1))
            mask[r, a : int(rng.integers(a, length + 1))] = True
        # paragraph breaks at random (none in the first half of the cases)
        segments = np.cumsum(rng.random((rows, length)) < (0.2 if case % 2 else 0.0), axis=1)
        starts, ends, scores = decode_spans(start, end, mask, max_len, top_n, segments=segments)
        for r in range(rows):
            got = [(round(v, 4), s, e) for s, e, v in
                   zip(starts[r].tolist(), ends[r].tolist(), scores[r].tolist()) if v != float("-inf")]
            want = [(round(v, 4), s, e) for v, s, e in
                    brute_force(start[r], end[r], mask[r], max_len, top_n, segments[r])]
            assert got == want


def test_decode_spans_handles_torch_input_and_no_valid_span() -> None:
    start = torch.tensor([[0.0, 5.0, 1.0, 0.0]])
    end = torch.tensor([[0.0, 1.0, 4.0, 9.0]])
    starts, ends, scores = decode_spans(start, end, torch.tensor([[False, True, True, False]]), 30, 2)
    assert (starts[0].tolist(), ends[0].tolist(), scores[0].tolist()) == ([1, 1], [2, 1], [9.0, 6.0])
    _, _, none = decode_spans(start, end, torch.zeros((1, 4), dtype=torch.bool), 30, 2)
    assert torch.isinf(none).all()


# --- windowing and reading ---------------------------------------------------------------------


def test_windows_match_the_tokenizers_own_overflow_windows(reader: Reader) -> None:
    from docqa.reader import _plan_windows

    tok = reader._tokenizer
    question = "How many games did the Broncos play?"
    enc = tok(question, LONG, truncation="only_second", max_length=128, stride=32,
              return_overflowing_tokens=True)
    plan = _plan_windows(tok, reader._template, [question], [[context(LONG)]], 128, 32)
    assert len(plan.windows) == len(enc["input_ids"]) > 3
    assert [list(w.ids) for w in plan.windows] == enc["input_ids"]


def test_long_passage_spans_slice_back_to_document_text(reader: Reader) -> None:
    prefix = "Title page.\f"
    document = prefix + LONG
    spans = reader.read(["Where did the Broncos play?"], [[context(LONG, start=len(prefix))]])[0]
    assert len(spans) > 10  # several windows, several spans each
    for span in spans:
        assert document[span.start : span.end] == span.text
        assert span.text and span.text == span.text.strip()
    assert len({(s.start, s.end) for s in spans}) == len(spans)  # overlapping windows deduped
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
    assert max(s.end for s in spans) > len(document) // 2  # later windows were read too


def test_batched_reading_equals_one_by_one(tiny_model_dir: Path) -> None:
    gen = FactGenerator(seed=3)
    passages = [gen.passage(n_facts=n) for n in (1, 3, 6, 8)]
    questions = [p.facts[0].question for p in passages]
    contexts = [[context(p.text, path=f"{i}.txt") for i, p in enumerate(passages)] for _ in questions]
    contexts[1].append(context(LONG, path="long.txt"))
    batched = Reader(model=str(tiny_model_dir), batch_size=16, max_seq_len=128, doc_stride=32)
    single = Reader(model=str(tiny_model_dir), batch_size=1, max_seq_len=128, doc_stride=32)
    together = batched.read(questions, contexts)
    alone = [single.read([q], [c])[0] for q, c in zip(questions, contexts)]
    for a, b in zip(together, alone):
        assert [(s.context.hit.path, s.start, s.end) for s in a] == [(s.context.hit.path, s.start, s.end) for s in b]
        assert np.allclose([s.score for s in a], [s.score for s in b], atol=1e-4)


def test_length_batches_cut_where_padding_costs_more_than_a_pass() -> None:
    from itertools import combinations

    from docqa.reader import length_batches

    assert length_batches([263, 250, 150, 120], 16, 64) == [range(0, 2), range(2, 4)]
    assert length_batches([263, 250, 150, 120], 16, 300) == [range(0, 4)]
    assert length_batches([263, 250, 150, 120], 16, math.inf) == [range(0, 4)]
    assert length_batches([100] * 5, 2, math.inf) == [range(0, 2), range(2, 4), range(4, 5)]
    assert length_batches([], 16, 64) == []

    def cost(batches: list[range], lengths: list[int], pass_tokens: int) -> int:
        return sum(len(b) * lengths[b.start] + pass_tokens for b in batches)

    rng = np.random.default_rng(0)
    for _ in range(30):  # the cheapest of all cuts into consecutive batches of at most 3
        lengths = sorted(rng.integers(20, 300, size=int(rng.integers(1, 8))).tolist(), reverse=True)
        got = length_batches(lengths, 3, 40)
        assert [i for b in got for i in b] == list(range(len(lengths))) and max(map(len, got)) <= 3
        n = len(lengths)
        cuts = [[0, *c, n] for k in range(n) for c in combinations(range(1, n), k)]
        best = min(cost([range(a, b) for a, b in zip(c, c[1:])], lengths, 40) for c in cuts
                   if all(b - a <= 3 for a, b in zip(c, c[1:])))
        assert cost(got, lengths, 40) == best


def test_length_grouped_batches_read_what_one_padded_batch_reads(tiny_model_dir: Path) -> None:
    from docqa.reader import length_batches

    gen = FactGenerator(seed=5)
    passages = [gen.passage(n_facts=n) for n in (1, 2, 4, 6, 8)]
    questions = [p.facts[0].question for p in passages[:3]]
    contexts = [[context(p.text, path=f"{i}.txt") for i, p in enumerate(passages)] for _ in questions]
    contexts[2].append(context(LONG, path="long.txt"))
    grouped = Reader(model=str(tiny_model_dir), pass_tokens=0, max_seq_len=128, doc_stride=32)
    padded = Reader(model=str(tiny_model_dir), pass_tokens=math.inf, max_seq_len=128, doc_stride=32)
    for q, c in zip(questions, contexts):
        a, b = grouped.read([q], [c])[0], padded.read([q], [c])[0]
        assert [(s.context.hit.path, s.start, s.end) for s in a] == [(s.context.hit.path, s.start, s.end) for s in b]
        assert np.allclose([s.score for s in a], [s.score for s in b], atol=1e-4)
    # the grouped reader did cut these windows into several batches
    from docqa.reader import _plan_windows

    lengths = sorted((len(w.ids) for w in _plan_windows(grouped._tokenizer, grouped._template, questions[:1],
                                                         contexts[:1], 128, 32).windows), reverse=True)
    assert len(length_batches(lengths, grouped.batch_size, grouped.pass_tokens)) > 1


def test_identical_contexts_are_read_once_and_spans_not_repeated(reader: Reader) -> None:
    from docqa.reader import _plan_windows

    text = FactGenerator(seed=4).passage(n_facts=2).text
    same = [context(text, path="a.txt"), context(text, path="a.txt")]
    plan = _plan_windows(reader._tokenizer, reader._template, ["q?", "q?"], [same, same], 128, 32)
    assert len(plan.windows) == 1
    spans = reader.read(["q?"], [same])[0]
    assert len({(s.start, s.end) for s in spans}) == len(spans)
    # the same text in two files: read once, cited from both
    both = reader.read(["q?"], [[context(text, path="a.txt"), context(text, path="b.txt")]])[0]
    assert {s.context.hit.path for s in both} == {"a.txt", "b.txt"}


def test_empty_inputs(reader: Reader) -> None:
    assert reader.read([], []) == []
    assert reader.read(["q?"], [[]]) == [[]]
    assert reader.read(["q?"], [[context("")]]) == [[]]
    with pytest.raises(ValueError):
        reader.read(["q?"], [])


def test_a_very_long_question_still_leaves_room_for_the_passage(reader: Reader) -> None:
    question = "Broncos " * 400 + "?"
    spans = reader.read([question], [[context(LONG[:500])]])[0]
    assert spans and all(LONG[s.start : s.end] == s.text for s in spans)


# --- the trained tiny model: right answers through the whole reader ------------------------------


def test_trained_tiny_model_answers_held_out_facts_in_multi_fact_passages(trained_model_dir: Path) -> None:
    reader = Reader(model=str(trained_model_dir))
    gen = FactGenerator(seed=2024)  # names never seen in training
    passages = [gen.passage(n_facts=6) for _ in range(25)]
    questions, contexts, answers = [], [], []
    for i, p in enumerate(passages):
        for fact in p.facts[:2]:
            questions.append(fact.question)
            answers.append(fact.value)
            # the right passage among two others, as retrieval would hand them over
            others = [passages[(i + 1) % len(passages)], passages[(i + 2) % len(passages)]]
            contexts.append([context(p.text, path="right.txt")] + [context(o.text, path="other.txt") for o in others])
    results = reader.read(questions, contexts)
    right = sum(bool(r) and r[0].text == a and r[0].context.hit.path == "right.txt" for r, a in zip(results, answers))
    assert right >= 0.95 * len(questions), f"{right}/{len(questions)}"
    assert 40 <= len(passages[0].text.split()) <= 140


# --- loading -----------------------------------------------------------------------------------


def test_load_is_lazy_idempotent_and_timed(tiny_model_dir: Path) -> None:
    r = Reader(model=str(tiny_model_dir))
    assert not r.loaded
    r.read(["q?"], [[context("Some text.")]])
    assert r.loaded and r.load_s > 0 and r.device == "cpu" and r.precision == "fp32"
    model = r._model
    r.load()
    assert r._model is model


def test_model_falls_back_to_env_then_default(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    monkeypatch.setenv("DOCQA_MODEL", str(tiny_model_dir))
    assert Reader().model_name == str(tiny_model_dir)
    assert Reader(model="x/y").model_name == "x/y"
    monkeypatch.delenv("DOCQA_MODEL")
    assert Reader().model_name == DEFAULT_MODEL


def test_cased_vocab_without_config_loads_cased(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The SpanBERT tokenizer repo has only vocab.txt: naive loading lowercases it."""
    from transformers import BertTokenizer

    bare = tmp_path / "spanbert-tokenizer"
    bare.mkdir()
    shutil.copy(CASED_VOCAB / "vocab.txt", bare / "vocab.txt")
    assert BertTokenizer.from_pretrained(str(bare)).tokenize("Denver Broncos")[0] == "den"  # the trap
    r = Reader(model=str(tiny_model_dir), tokenizer=str(bare))
    r.load()
    assert r._tokenizer.tokenize("Denver Broncos") == ["Denver", "Broncos"]
    text = "The Denver Broncos won."
    spans = r.read(["Who won?"], [[context(text)]])[0]
    assert all(text[s.start : s.end] == s.text for s in spans)


def test_model_folder_tokenizer_is_used_even_when_uncased(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    folder = tmp_path / "uncased-model"
    shutil.copytree(tiny_model_dir, folder)
    AutoTokenizer.from_pretrained(str(CASED_VOCAB), do_lower_case=True).save_pretrained(str(folder))
    r = Reader(model=str(folder))
    r.load()
    assert r._tokenizer.tokenize("Denver Broncos")[:2] == ["den", "##ver"]  # lowercased, as saved
    assert cased_tokenizer().tokenize("Denver Broncos") == ["Denver", "Broncos"]


def fake_hub_cache(home: Path, repo: str, files: list[Path]) -> None:
    """The layout huggingface_hub leaves after `hf download repo`."""
    root = home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0123abcd")
    for f in files:
        shutil.copy(f, snapshot / f.name)


def test_default_model_from_the_cache_offline_uses_the_spanbert_tokenizer_cased(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub_cache(tmp_path, DEFAULT_MODEL, [tiny_model_dir / "config.json", tiny_model_dir / "model.safetensors"])
    fake_hub_cache(tmp_path, DEFAULT_TOKENIZER, [CASED_VOCAB / "vocab.txt"])
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    r = Reader()
    r.load()
    assert r._tokenizer.tokenize("Denver Broncos") == ["Denver", "Broncos"]


def one_line_error(reader: Reader) -> str:
    started = time.perf_counter()
    with pytest.raises(ModelError) as err:
        reader.load()
    assert time.perf_counter() - started < 10, "must fail at once, not retry"
    message = str(err.value)
    assert "\n" not in message
    return message


def test_uncached_model_offline_fails_at_once_saying_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(Reader(model="nonexistent-org/nonexistent-model"))
    assert "hf download nonexistent-org/nonexistent-model" in message and "--model DIR" in message
    message = one_line_error(Reader(model=DEFAULT_MODEL))
    assert f"hf download {DEFAULT_MODEL}" in message and f"hf download {DEFAULT_TOKENIZER}" in message


def test_uncached_model_with_unreachable_hub_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    # connection refused; a black hole (or whatever this network does with it): never a hang
    for endpoint in ("http://127.0.0.1:9", "http://10.255.255.1:443"):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        message = one_line_error(Reader(model="nonexistent-org/nonexistent-model"))
        assert "hf download nonexistent-org/nonexistent-model" in message
        assert "cannot be reached" in message or endpoint.startswith("http://10.")


def test_folders_that_are_not_qa_models_are_refused(tmp_path: Path, cased_vocab: Path) -> None:
    from transformers import BertConfig, BertModel

    from tinymodels import tiny_config

    assert "does not exist" in one_line_error(Reader(model=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    assert "no config.json" in one_line_error(Reader(model=str(tmp_path / "empty"), tokenizer=str(cased_vocab)))
    config: BertConfig = tiny_config()
    BertModel(config).save_pretrained(str(tmp_path / "encoder"))
    shutil.copy(cased_vocab / "vocab.txt", tmp_path / "encoder")
    assert "not an extractive question-answering model" in one_line_error(Reader(model=str(tmp_path / "encoder")))


def test_model_folder_without_tokenizer_asks_for_one(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, folder / name)
    assert "--tokenizer" in one_line_error(Reader(model=str(folder)))


def test_options_are_checked(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="fp16"):
        Reader(model=str(tiny_model_dir), device="cpu", precision="fp16").load()
    with pytest.raises(ModelError):
        Reader(precision="fp8")
    with pytest.raises(ModelError):
        Reader(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="cuda"):
            Reader(model=str(tiny_model_dir), device="cuda").load()


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precisions_load_and_read(tiny_model_dir: Path, precision: str) -> None:
    r = Reader(model=str(tiny_model_dir), precision=precision)
    spans = r.read(["Where?"], [[context(LONG[:400])]])[0]
    assert r.precision == precision and spans
    assert all(LONG[s.start : s.end] == s.text for s in spans)


def test_threads_are_set_on_load(tiny_model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        Reader(model=str(tiny_model_dir), threads=1).load()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_importing_the_reader_does_not_import_torch() -> None:
    code = "import sys, docqa.reader; sys.exit(int('torch' in sys.modules or 'transformers' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- a real model ------------------------------------------------------------------------------


def test_proxy_model_answers_held_out_squad_questions() -> None:
    if not PROXY_MODEL.is_dir() or not SQUAD.is_file():
        pytest.skip(f"{PROXY_MODEL} or {SQUAD} is absent (the shared test material sits beside the project)")
    from docqa.datasets import load_squad

    questions = [q for a in load_squad(SQUAD, slice(40, 48)) for q in a.questions[::40]][:30]
    reader = Reader(model=str(PROXY_MODEL), precision="fp32")
    results = reader.read([q.question for q in questions],
                          [[context(q.paragraph, start=q.paragraph_start)] for q in questions])
    f1 = np.mean([max(token_f1(r[0].text, a) for a in q.answers) for r, q in zip(results, questions)])
    assert f1 > 0.5, f"F1 {f1:.2f} on {len(questions)} held-out questions"
    assert reader._tokenizer.tokenize("Denver")[0] == "denver"  # its own, uncased tokenizer


def token_f1(prediction: str, gold: str) -> float:
    p, g = prediction.lower().split(), gold.lower().split()
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    return 0.0 if common == 0 else 2 * common / (len(p) + len(g))


def test_bf16_loads_the_fp32_weights_rounded_and_the_span_head_unrounded(tiny_model_dir: Path) -> None:
    import torch

    fp32, bf16 = (Reader(model=str(tiny_model_dir), precision=p, pack_weights=False) for p in ("fp32", "bf16"))
    fp32.load(), bf16.load()
    weights = dict(fp32._model.named_parameters())
    loaded = dict(bf16._model.named_parameters())
    assert loaded.keys() == weights.keys()
    for name, p in loaded.items():
        expected = weights[name] if name.startswith("qa_outputs.") else weights[name].bfloat16()
        assert p.dtype == expected.dtype and torch.equal(p, expected), name


def _linear_weights(reader: Reader) -> set[str]:
    return {f"{name}.weight" for name, m in reader._model.named_modules()
            if isinstance(m, torch.nn.Linear) and "weight" in m._parameters}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_weights_packed_once_read_what_torchs_linear_reads(trained_model_dir: Path, precision: str) -> None:
    gen = FactGenerator(seed=5)
    passages = [gen.passage(n_facts=n) for n in (2, 5, 8)]
    questions = [f.question for p in passages for f in p.facts[:2]]
    contexts = [[context(p.text, path=f"{i}.txt") for i, p in enumerate(passages)] + [context(LONG, path="long.txt")]
                for _ in questions]
    packed, plain = (Reader(model=str(trained_model_dir), precision=precision, pack_weights=pack, max_seq_len=128,
                            doc_stride=32) for pack in (True, False))
    packed.load(), plain.load()
    # every Linear but the span head now runs on its packed copy: the weight itself is gone
    assert _linear_weights(packed) == {"qa_outputs.weight"}
    layers = plain._model.config.num_hidden_layers  # each: q, k, v, attention out, intermediate, out
    assert len(_linear_weights(plain)) == 1 + 6 * layers
    close = 1e-2 if precision == "bf16" else 1e-4
    for a, b in zip(packed.read(questions, contexts), plain.read(questions, contexts)):
        assert (a[0].context.hit.path, a[0].text, a[0].start) == (b[0].context.hit.path, b[0].text, b[0].start)
        # the same sums in another order: candidates that tie to rounding may swap places
        scores = {(s.context.hit.path, s.start, s.end): s.score for s in b}
        shared = [(s.score, scores[key]) for s in a if (key := (s.context.hit.path, s.start, s.end)) in scores]
        assert len(shared) >= 0.9 * len(a) and np.allclose(*zip(*shared), rtol=close)


def test_a_model_that_reads_a_linear_weight_is_loaded_again_unpacked(
    trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docqa.reader

    load = docqa.reader._load_model
    loads = []

    def reading_a_weight(*args: object) -> object:  # as some models' code does
        model = load(*args)
        layer = model.bert.encoder.layer[1].output.dense
        layer.register_forward_pre_hook(lambda module, inputs: (inputs[0].to(module.weight.dtype),))
        loads.append(model)
        return model

    question, passage = "Where was Ada born?", [context("Ada was born in Zürich and moved to Oslo.")]
    plain = Reader(model=str(trained_model_dir), precision="fp32", pack_weights=False)
    plain.load()
    monkeypatch.setattr(docqa.reader, "_load_model", reading_a_weight)
    reader = Reader(model=str(trained_model_dir), precision="fp32")
    reader.load()
    assert len(loads) == 2 and reader._model is loads[1]  # packing failed its probe: loaded again
    assert len(_linear_weights(reader)) == 1 + 6 * reader._model.config.num_hidden_layers  # torch's Linear
    got = reader.read([question], [passage])[0]
    assert [(s.text, s.score) for s in got] == [(s.text, s.score) for s in plain.read([question], [passage])[0]]


def test_spans_never_cross_a_paragraph_break(tiny_model_dir: Path) -> None:
    from docqa.spans import crosses_paragraph

    text = ("Keepers lived in the tower.\n\nKeepers\n\nUntil automation came in 1980 the lamp was lit by"
            "\fhand.\fA new page starts a new sentence here.")
    many = Reader(model=str(tiny_model_dir), device="cpu", spans_per_window=500)  # every span a random model finds
    spans = many.read(["who lit the lamp?"], [[context(text)]])[0]
    assert len(spans) > 100
    assert not [s.text for s in spans if crosses_paragraph(text, s.start, s.end)]
    assert any("\f" in s.text for s in spans)  # a sentence across a page break is one paragraph
