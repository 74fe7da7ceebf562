"""The reader: contexts -> candidate answer spans, with an extractive-QA model.

transformers >= 5.3 has no question-answering pipeline, so this module owns what it did:
model/tokenizer loading (offline-safe), windowing, batched inference and span decoding.

- Each question and each distinct context text is tokenised once; windows are assembled from
  token ids (``[CLS] q [SEP] ctx-window [SEP]`` for BERT, whatever the tokenizer's pair template
  is otherwise), with the same overlap semantics as the tokenizer's ``stride``.
- All windows of all questions go through the model together in length-sorted batches, padded
  only to each batch's longest window, and cut where padding would cost more than another
  forward pass (``length_batches``); identical windows are read once.
- On a CPU, each layer's weights are laid out for oneDNN's matrix kernels once, at load
  (``_pack_linear_weights``), not again in every forward pass as torch's Linear does.
- Spans are decoded vectorised (``decode_spans``), each inside one paragraph
  (``docqa.spans.token_segments``); a span's score is the raw start+end logit sum.

torch and transformers are imported inside functions only: importing docqa must stay cheap.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.errors import ModelError, first_line
from docqa.machine import usable_cores
from docqa.spans import token_segments
from docqa.types import Context, Span

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_MODEL = "mrm8488/spanbert-large-finetuned-squadv1"
DEFAULT_TOKENIZER = "SpanBERT/spanbert-large-cased"
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp16")

# What a hub download fetches: weights, config and tokenizer files, not TF/Flax/ONNX copies.
_HUB_FILES = ["*.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "*.model", "merges.txt"]
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                    "spiece.model", "sentencepiece.bpe.model")
_PROBE_TIMEOUT_S = 3.0
# Below this many parameters a reduced precision saves milliseconds, not seconds, and only
# risks changing answers, so "auto" keeps such (test-sized) models in fp32.
_SMALL_MODEL_PARAMS = 50_000_000
# What one more forward pass costs on a CPU beyond its tokens, in tokens' worth of work (mostly
# reading every weight once, so about the same for any model size): fitted on real windows, one
# thread, 26 for the SpanBERT-large shape in bf16, 41 and 62 for the proxy in bf16 and fp32
# (docs/bench-reader.md, "Less padding"; measured before weights were packed at load, when each
# pass also laid them out again). On a GPU a pass's fixed cost dwarfs padding, so batches there
# are cut only at ``batch_size``.
_CPU_PASS_TOKENS = 48


class Reader:
    """Reads contexts with an extractive-QA model and returns candidate spans per question.

    ``device`` and ``precision`` are resolved by ``load()`` ("auto" becomes what was chosen).
    """

    def __init__(
        self,
        model: str | None = None,
        tokenizer: str | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        max_answer_len: int = 30,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        batch_size: int = 16,
        spans_per_window: int = 3,
        pass_tokens: float | None = None,
        pack_weights: bool = True,
    ) -> None:
        if device not in DEVICES:
            raise ModelError(f"--device must be one of {', '.join(DEVICES)}, not {device!r}.")
        if precision not in PRECISIONS:
            raise ModelError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
        for name, value in (("max_answer_len", max_answer_len), ("max_seq_len", max_seq_len),
                            ("batch_size", batch_size), ("spans_per_window", spans_per_window)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if doc_stride < 0:
            raise ValueError(f"doc_stride must be >= 0, not {doc_stride}")
        if pass_tokens is not None and pass_tokens < 0:
            raise ValueError(f"pass_tokens must be >= 0, not {pass_tokens}")
        if threads is not None and threads < 1:
            raise ModelError(f"--threads must be at least 1, not {threads}.")
        self.model_name = model or os.environ.get("DOCQA_MODEL") or DEFAULT_MODEL
        self.tokenizer_name = tokenizer
        self.device = device
        self.precision = precision
        self.threads = threads
        self.max_answer_len = max_answer_len
        self.max_seq_len = max_seq_len
        self.doc_stride = doc_stride
        self.batch_size = batch_size
        self.spans_per_window = spans_per_window
        # a forward pass's fixed cost in tokens (``length_batches``); None: by device, at load
        self.pass_tokens = pass_tokens
        # on a CPU, hand each layer's weights to oneDNN once (``_pack_linear_weights``); False
        # keeps torch's Linear, which lays them out again on every forward pass (for comparison)
        self.pack_weights = pack_weights
        self.load_s = 0.0
        self._model: Any = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._template: _PairTemplate | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load tokenizer and model (once); records ``load_s``. Raises ``ModelError``."""
        with self._lock:
            if self._model is not None:
                return
            started = time.perf_counter()
            import torch

            torch.set_num_threads(self.threads or usable_cores())
            device = _pick_device(self.device)
            _check_precision(self.precision, device)
            model_dir = _resolve(self.model_name, "model", self.tokenizer_name is None)
            tokenizer_dir = self._tokenizer_dir(model_dir)
            tokenizer = _load_tokenizer(tokenizer_dir)
            config = _load_config(model_dir)
            precision = self.precision
            if precision == "auto":
                precision = _auto_precision(device, _cpu_flags(), _saved_parameters(model_dir, config))
            model = _to_precision(_load_model(model_dir, config, precision), precision, device)
            packed: int | None = 0
            if device == "cpu":
                if self.pack_weights and (packed := _pack_linear_weights(model)) is None:
                    model = _to_precision(_load_model(model_dir, config, precision), precision, device)
                _keep_freed_memory()
            self._template = _PairTemplate.of(tokenizer)
            self._tokenizer, self._model = tokenizer, model
            self.device, self.precision = device, precision
            if self.pass_tokens is None:
                self.pass_tokens = _CPU_PASS_TOKENS if device == "cpu" else math.inf
            self.load_s = time.perf_counter() - started
            log.info("loaded %s (tokenizer %s) on %s in %s with %d threads, %d layers packed, in %.1f s",
                     model_dir, tokenizer_dir, device, precision, torch.get_num_threads(), packed or 0, self.load_s)

    def _tokenizer_dir(self, model_dir: Path) -> Path:
        if self.tokenizer_name:
            return _resolve(self.tokenizer_name, "tokenizer", False)
        if any((model_dir / name).is_file() for name in _TOKENIZER_FILES):
            return model_dir
        if self.model_name == DEFAULT_MODEL:
            return _resolve(DEFAULT_TOKENIZER, "tokenizer", False)
        raise ModelError(
            f"The model {self.model_name} comes without tokenizer files: pass --tokenizer NAME_OR_DIR "
            "(the tokenizer it was trained with)."
        )

    def read(self, questions: Sequence[str], contexts: Sequence[Sequence[Context]]) -> list[list[Span]]:
        """Candidate spans for each question from its contexts, best score first.

        ``contexts[i]`` are the texts to read for ``questions[i]``. Each window yields its best
        ``spans_per_window`` spans; a span found in several windows (or several contexts over the
        same document characters) is kept once, with its best score.
        """
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} context lists")
        self.load()
        assert self._tokenizer is not None and self._template is not None  # set by load()
        plan = _plan_windows(self._tokenizer, self._template, questions, contexts,
                             self.max_seq_len, self.doc_stride)
        found = self._run(plan.windows)
        return [_collect(plan, found, q, contexts[q]) for q in range(len(questions))]

    def _run(self, windows: Sequence[_Window]) -> list[list[tuple[int, int, float]]]:
        """Each window's top spans as (context-token start, end, score)."""
        import torch

        assert self._template is not None
        order = sorted(range(len(windows)), key=lambda w: len(windows[w].ids), reverse=True)
        found: list[list[tuple[int, int, float]]] = [[] for _ in windows]
        assert self.pass_tokens is not None  # set by load()
        for rows in length_batches([len(windows[w].ids) for w in order], self.batch_size, self.pass_tokens):
            batch = [windows[w] for w in order[rows.start : rows.stop]]
            inputs, context_mask, segments = _tensors(batch, self._template, self.device)
            with torch.inference_mode():
                out = self._model(**inputs)
            starts, ends, scores = decode_spans(out.start_logits.float(), out.end_logits.float(),
                                                context_mask, self.max_answer_len, self.spans_per_window,
                                                segments=segments)
            for row, window in enumerate(batch):
                found[order[rows.start + row]] = [
                    (s - window.ctx_pos + window.ctx_first, e - window.ctx_pos + window.ctx_first, v)
                    for s, e, v in zip(starts[row].tolist(), ends[row].tolist(), scores[row].tolist())
                    if v != float("-inf")
                ]
        return found


# --- windowing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PairTemplate:
    """Where a tokenizer puts special tokens around a (question, context) pair."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    question_type: int
    context_type: int
    pad_id: int
    uses_type_ids: bool

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> _PairTemplate:
        # Learn the layout from one probe pair instead of hard-coding BERT's [CLS] q [SEP] c [SEP].
        enc = tokenizer("a", "b", return_token_type_ids=True)
        ids, seq, types = enc["input_ids"], enc.sequence_ids(0), enc["token_type_ids"]
        q_at, c_at = seq.index(0), seq.index(1)
        q_end = max(i for i, s in enumerate(seq) if s == 0) + 1
        c_end = max(i for i, s in enumerate(seq) if s == 1) + 1
        return cls(
            prefix=tuple(ids[:q_at]),
            middle=tuple(ids[q_end:c_at]),
            suffix=tuple(ids[c_end:]),
            question_type=types[q_at],
            context_type=types[c_at],
            pad_id=tokenizer.pad_token_id or 0,
            uses_type_ids="token_type_ids" in tokenizer.model_input_names,
        )

    @property
    def specials(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


@dataclass(frozen=True)
class _Window:
    ids: tuple[int, ...]  # the whole model input
    question_len: int  # tokens before the context part, specials included
    ctx_pos: int  # position of the first context token in ``ids``
    ctx_first: int  # index of that token among the text's tokens
    ctx_len: int
    segments: tuple[int, ...] = ()  # paragraph number of each context token


@dataclass(frozen=True)
class _Plan:
    windows: list[_Window]
    # for each (question, context-text) reading unit: its window indices
    unit_windows: dict[tuple[int, int], list[int]]
    # for each question: the text index of each of its contexts
    text_of: list[list[int]]
    offsets: list[list[tuple[int, int]]]  # each text's token -> (char start, char end)


def _plan_windows(
    tokenizer: PreTrainedTokenizerBase,
    template: _PairTemplate,
    questions: Sequence[str],
    contexts: Sequence[Sequence[Context]],
    max_seq_len: int,
    doc_stride: int,
) -> _Plan:
    """Tokenise each question and each distinct text once, then cut windows from the ids."""
    texts: dict[str, int] = {}
    text_of = [[texts.setdefault(c.text, len(texts)) for c in cs] for cs in contexts]
    q_index: dict[str, int] = {}
    q_of = [q_index.setdefault(q, len(q_index)) for q in questions]
    max_question = max(1, (max_seq_len - template.specials) // 2)
    q_ids = [ids[:max_question] for ids in _encode(tokenizer, list(q_index), offsets=False)[0]]
    t_ids, offsets = _encode(tokenizer, list(texts), offsets=True)
    segments = [token_segments(text, offsets[t]) for text, t in texts.items()]
    windows: list[_Window] = []
    seen: dict[tuple[int, ...], int] = {}
    unit_windows: dict[tuple[int, int], list[int]] = {}
    for q, text_indices in enumerate(text_of):
        question = q_ids[q_of[q]]
        for t in text_indices:
            if (q, t) in unit_windows:
                continue
            unit: list[int] = []
            for window in _cut(template, question, t_ids[t], segments[t], max_seq_len, doc_stride):
                unit.append(seen.setdefault(window.ids + (window.ctx_first,) + window.segments, len(windows)))
                if unit[-1] == len(windows):
                    windows.append(window)
            unit_windows[(q, t)] = unit
    return _Plan(windows=windows, unit_windows=unit_windows, text_of=text_of, offsets=offsets)


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], offsets: bool) -> tuple[list[list[int]], list]:
    if not texts:
        return [], []
    # verbose=False: texts longer than the model's limit are expected here (windows cut them).
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets,
                    return_attention_mask=False, return_token_type_ids=False, verbose=False)
    return enc["input_ids"], [[tuple(o) for o in row] for row in enc["offset_mapping"]] if offsets else []


def _cut(template: _PairTemplate, question: list[int], text: list[int], segments: list[int],
         max_seq_len: int, doc_stride: int) -> list[_Window]:
    """Windows over ``text`` as the tokenizer's ``truncation="only_second"``, ``stride`` cuts them:
    consecutive windows share ``doc_stride`` tokens, the last one ends at the text's end."""
    if not text:
        return []
    room = max(1, max_seq_len - template.specials - len(question))
    overlap = min(doc_stride, room // 2)  # the tokenizer refuses overlap >= room; halve instead
    head = template.prefix + tuple(question) + template.middle
    windows, first = [], 0
    while True:
        part = tuple(text[first : first + room])
        windows.append(_Window(ids=head + part + template.suffix, question_len=len(head),
                               ctx_pos=len(head), ctx_first=first, ctx_len=len(part),
                               segments=tuple(segments[first : first + room])))
        if first + room >= len(text):
            return windows
        first += room - overlap


def length_batches(lengths: Sequence[int], most: int, pass_tokens: float) -> list[range]:
    """Cut windows of these lengths (longest first) into consecutive batches of at most ``most``,
    each padded to its first window, minimising padded tokens + ``pass_tokens`` per batch (the
    fixed cost of a forward pass). Infinite ``pass_tokens``: batches of ``most``."""
    n = len(lengths)
    if math.isinf(pass_tokens):
        return [range(i, min(i + most, n)) for i in range(0, n, most)]
    cost, cut = [0.0] + [math.inf] * n, [0] * (n + 1)  # best cost of the first j windows; its last cut
    for j in range(1, n + 1):
        for i in range(max(0, j - most), j):  # last batch = windows i..j-1 (the first of equals: fewer batches)
            c = cost[i] + (j - i) * lengths[i] + pass_tokens
            if c < cost[j]:
                cost[j], cut[j] = c, i
    batches, j = [], n
    while j:
        batches.append(range(cut[j], j))
        j = cut[j]
    return batches[::-1]


def _tensors(batch: Sequence[_Window], template: _PairTemplate,
             device: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest window; returns model inputs, the context-token mask and each
    context token's paragraph number (-1 elsewhere)."""
    import torch

    width = max(len(w.ids) for w in batch)
    ids = torch.full((len(batch), width), template.pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.full((len(batch), width), template.question_type, dtype=torch.long)
    context = torch.zeros((len(batch), width), dtype=torch.bool)
    segments = torch.full((len(batch), width), -1, dtype=torch.long)
    for row, w in enumerate(batch):
        ids[row, : len(w.ids)] = torch.tensor(w.ids)
        mask[row, : len(w.ids)] = 1
        types[row, w.question_len : len(w.ids)] = template.context_type
        context[row, w.ctx_pos : w.ctx_pos + w.ctx_len] = True
        segments[row, w.ctx_pos : w.ctx_pos + w.ctx_len] = torch.tensor(w.segments)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if template.uses_type_ids:
        inputs["token_type_ids"] = types
    return {k: v.to(device) for k, v in inputs.items()}, context, segments


def _collect(plan: _Plan, found: list[list[tuple[int, int, float]]], q: int,
             contexts: Sequence[Context]) -> list[Span]:
    """Map a question's window spans to document offsets; one span per document location."""
    return best_per_location(
        Span(context=context, start=context.start + offsets[s][0], end=context.start + offsets[e][1], score=score)
        for context, t in zip(contexts, plan.text_of[q])
        for offsets in [plan.offsets[t]]
        for w in plan.unit_windows[(q, t)]
        for s, e, score in found[w]
    )


def best_per_location(spans: Iterable[Span]) -> list[Span]:
    """The best-scored span of each document location (the first of equals), best first."""
    best: dict[tuple[str, int, int, int], Span] = {}
    for span in spans:
        key = (span.context.hit.path, span.context.hit.document_id, span.start, span.end)
        if key not in best or span.score > best[key].score:
            best[key] = span
    return sorted(best.values(), key=lambda span: span.score, reverse=True)


# --- decoding --------------------------------------------------------------------------------


def decode_spans(
    start_logits: Any, end_logits: Any, context_mask: Any, max_answer_len: int, top_n: int,
    segments: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``top_n`` best spans of each row, vectorised.

    Inputs are ``[batch, length]`` (torch tensors or numpy arrays). A span (s, e) is valid when
    both ends are context tokens (``context_mask``, contiguous), ``e >= s``,
    ``e - s < max_answer_len`` and, given ``segments`` (a paragraph number per token),
    ``segments[s] == segments[e]``; its score is ``start_logits[s] + end_logits[e]``. Returns
    ``(starts, ends, scores)``, each ``[batch, k]`` with ``k = min(top_n, length * band)``, best
    first; a score of ``-inf`` marks a slot with no valid span.
    """
    import torch

    start = torch.as_tensor(start_logits, dtype=torch.float32)
    end = torch.as_tensor(end_logits, dtype=torch.float32)
    mask = torch.as_tensor(context_mask, dtype=torch.bool, device=start.device)
    rows, length = start.shape
    band = max(1, min(max_answer_len, length))
    start = start.masked_fill(~mask, float("-inf"))
    end = end.masked_fill(~mask, float("-inf"))
    # scores[b, s, d] = start[b, s] + end[b, s + d]: only the band of allowed lengths, not L x L.
    padded = torch.cat([end, end.new_full((rows, band - 1), float("-inf"))], dim=1)
    scores = start[:, :, None] + padded.unfold(1, band, 1)
    if segments is not None:
        seg = torch.as_tensor(segments, dtype=torch.long, device=start.device)
        seg_padded = torch.cat([seg, seg.new_full((rows, band - 1), -2)], dim=1)
        scores = scores.masked_fill(seg[:, :, None] != seg_padded.unfold(1, band, 1), float("-inf"))
    top, index = scores.flatten(1).topk(min(top_n, length * band), dim=1)
    starts = torch.div(index, band, rounding_mode="floor")
    return starts, starts + index % band, top


# --- loading ---------------------------------------------------------------------------------


def _pick_device(device: str) -> str:
    import torch

    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but torch sees no CUDA GPU: use --device cpu or auto.")
    if device == "mps" and not has_mps:
        raise ModelError("--device mps was asked for but this torch has no MPS backend: use --device cpu or auto.")
    return device


def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _check_precision(precision: str, device: str) -> None:
    if precision == "fp16" and device != "cuda":
        raise ModelError(
            f"--precision fp16 runs only on CUDA (CPUs have no fast fp16 kernels): on {device} use "
            "auto, bf16, int8 or fp32."
        )
    if precision == "int8" and device != "cpu":
        raise ModelError(f"--precision int8 (dynamic quantisation) runs only on the CPU: on {device} use auto.")


def _auto_precision(device: str, cpu_flags: frozenset[str], parameters: int) -> str:
    """The fastest precision that keeps answers unchanged on this device.

    Measured with bench/reader.py (docs/bench-reader.md): on the shared real QA model, bf16 (with
    the span head kept in fp32) gives the fp32 top answer for 99% of held-out SQuAD questions
    with EM/F1 within 0.5, and reads SpanBERT-large several times faster where the CPU has
    bf16 instructions (AMX-BF16 or AVX512-BF16). int8 dynamic quantisation changed a third of
    the answers, so "auto" never picks it. So: CUDA -> bf16 (fp16 where bf16 is unsupported);
    CPU with bf16 instructions -> bf16; otherwise fp32. Models under 50M parameters stay fp32:
    they read in milliseconds either way.
    """
    import torch

    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device != "cpu" or parameters < _SMALL_MODEL_PARAMS:
        return "fp32"
    return "bf16" if cpu_flags & {"amx_bf16", "avx512_bf16"} else "fp32"


_DTYPES = {"fp32": "float32", "int8": "float32", "bf16": "bfloat16", "fp16": "float16"}


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No "Loading weights" bar and no warnings from transformers: a CLI's output stays clean."""
    from transformers.utils import logging as hf_logging

    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # e.g. its load report of a checkpoint saved for another head
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _load_config(model_dir: Path) -> PretrainedConfig:
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise ModelError(
            f"{model_dir} is not a model folder (no config.json): pass a folder holding an "
            "extractive-QA model saved with save_pretrained, or a hub id."
        )
    try:
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"Cannot read the model config in {model_dir}: {first_line(err)}") from err
    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith("ForQuestionAnswering") for a in archs):
        raise ModelError(
            f"{model_dir} holds a {archs[0]}, not an extractive question-answering model "
            f"(*ForQuestionAnswering): pass one fine-tuned for extractive QA, e.g. {DEFAULT_MODEL}."
        )
    return config


def _saved_parameters(model_dir: Path, config: PretrainedConfig) -> int:
    """About how many parameters the checkpoint holds, from its files' sizes (no weights read):
    enough to tell a test-sized model from a real one before choosing the precision to load in."""
    import torch

    files = list(model_dir.glob("*.safetensors")) or list(model_dir.glob("*.bin"))
    saved = getattr(torch, str(getattr(config, "dtype", None) or "float32").removeprefix("torch."), torch.float32)
    return sum(f.stat().st_size for f in files) // saved.itemsize


_HEAD = "qa_outputs"


def _load_model(model_dir: Path, config: PretrainedConfig, precision: str) -> PreTrainedModel:
    import torch
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING

    try:
        cls = MODEL_FOR_QUESTION_ANSWERING_MAPPING[type(config)]
    except KeyError:
        raise ModelError(f"Cannot load an extractive-QA model from {model_dir}: transformers has no "
                         f"question-answering class for {type(config).__name__}.") from None
    if precision in ("bf16", "fp16"):
        # Load straight into the reduced precision, with the span head kept in fp32 from the
        # checkpoint's own values (see _keep_head_fp32). Loading fp32 and converting after made a
        # full fp32 copy first: measured twice as slow for SpanBERT-large.
        strict = [*(getattr(cls, "_keep_in_fp32_modules_strict", None) or []), _HEAD]
        cls = type(cls.__name__, (cls,), {"_keep_in_fp32_modules_strict": strict, "__module__": cls.__module__})
    # Always an explicit dtype: transformers 5 otherwise loads the saved dtype (fp16 weights
    # would then run at a crawl on a CPU).
    dtype = getattr(torch, _DTYPES[precision])
    try:
        with quiet_loading():
            model, info = cls.from_pretrained(str(model_dir), config=config, dtype=dtype, local_files_only=True,
                                              output_loading_info=True)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelError(f"Cannot load an extractive-QA model from {model_dir}: {first_line(err)}") from err
    untrained = [k for k in info.get("missing_keys", ()) if _HEAD in k]
    if untrained:
        raise ModelError(
            f"{model_dir} has no trained question-answering head ({untrained[0]} is missing): it is "
            "a base encoder; pass a model fine-tuned for extractive QA."
        )
    return model.eval()


def _to_precision(model: PreTrainedModel, precision: str, device: str) -> PreTrainedModel:
    """``model`` as loaded by ``_load_model`` in ``precision``, made ready to run on ``device``."""
    import torch

    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated, still the fastest here
            from torch.ao.quantization import quantize_dynamic

            model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif precision in ("bf16", "fp16"):
        _keep_head_fp32(model)
    return model.to(device).eval()


_GLIBC_M_TRIM_THRESHOLD, _GLIBC_M_MMAP_THRESHOLD = -1, -3
_ACTIVATION_HEAP_BYTES = 256 << 20


def _keep_freed_memory() -> None:
    """Let glibc reuse freed activation buffers instead of returning them to the OS.

    By default each multi-megabyte tensor a forward pass allocates is a fresh mmap whose pages
    fault in on first touch, and is unmapped when freed: on CPU that page-faulting cost as much
    as the matmuls around it (measured: a BERT-large feed-forward block 30 -> 20 ms in bf16).
    Keeping up to 256 MiB of freed memory in the heap costs nothing elsewhere. A no-op off glibc.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_GLIBC_M_MMAP_THRESHOLD, _ACTIVATION_HEAP_BYTES)
        libc.mallopt(_GLIBC_M_TRIM_THRESHOLD, _ACTIVATION_HEAP_BYTES)


def _release_freed_memory() -> None:
    """Hand the heap's free memory back to the OS now (glibc's ``malloc_trim``; a no-op elsewhere)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _keep_head_fp32(model: PreTrainedModel) -> None:
    """Compute the span logits in fp32: rounded to bf16 they tie and flip near-equal candidates
    (measured: 98.1% -> 99.1% agreement with fp32 answers); the head is one tiny matmul."""
    import torch

    head = getattr(model, _HEAD, None)
    if isinstance(head, torch.nn.Linear):
        head.float()  # a no-op when loaded so
        head.register_forward_pre_hook(lambda _module, args: (args[0].float(), *args[1:]))


def _pack_linear_weights(model: PreTrainedModel) -> int | None:
    """Give each fp32/bf16 Linear layer (but the span head) its weights in oneDNN's own layout,
    laid out once here; returns how many layers were packed, None when the model cannot run so.

    torch's Linear lays every weight out again for the CPU's matrix kernels on every call (and
    runs fp32 through MKL, slow on AMD): a cost per forward pass that staged reading, small
    batches and a fast matrix unit (AMX) pay most. oneDNN's packed Linear, the one
    ``torch.compile`` uses for frozen weights, does the same arithmetic without it; measured in
    docs/bench-reader.md ("Weights laid out once"): bf16 bit for bit the same, fp32 to rounding.
    Each packed copy replaces its weight at once, so memory does not grow. A model whose code
    reads a Linear's weight, or a CPU oneDNN cannot run the dtype on, fails a tiny forward pass
    after packing: None, and the caller loads the model again (its weights are gone).
    """
    import torch

    if not torch.backends.mkldnn.is_available():
        return 0
    ops = torch.ops.mkldnn
    layers = [layer for name, layer in model.named_modules()
              if type(layer) is torch.nn.Linear and name.rpartition(".")[2] != _HEAD
              and layer.weight.dtype in (torch.float32, torch.bfloat16)]
    vocab = getattr(model.config, "vocab_size", None) or 100
    probe = {"input_ids": torch.arange(1, 9).unsqueeze(0) % vocab, "attention_mask": torch.ones(1, 8, dtype=torch.long)}
    freed = 0
    try:
        for layer in layers:
            packed = ops._reorder_linear_weight(layer.weight.detach(), _PACK_ROWS)
            layer.forward = functools.partial(_packed_linear, ops, packed, layer.bias, layer.out_features)
            freed += layer.weight.nbytes
            del layer.weight
            if freed >= _RELEASE_BYTES:
                # loading left the weights in glibc's heap, where their copies did not fit the
                # holes they leave: without this the SpanBERT-large shape's `docqa ask` peaked
                # 500 MiB higher
                _release_freed_memory()
                freed = 0
        _release_freed_memory()
        with torch.inference_mode():
            model(**probe)
    except (RuntimeError, AttributeError, TypeError, ValueError) as err:
        log.info("reading with torch's Linear layers: packing them for oneDNN failed (%s)", first_line(err))
        return None
    return len(layers)


# How many rows (tokens) oneDNN lays the packed weights out for: about a batch of windows. Any
# number of rows runs; measured the same speed for 16 to 1,920 tokens packed for 1,920.
_PACK_ROWS = 2048
_RELEASE_BYTES = 64 << 20


def _packed_linear(ops: Any, packed: torch.Tensor, bias: torch.Tensor | None, width: int,
                   x: torch.Tensor) -> torch.Tensor:
    rows = ops._linear_pointwise(x.reshape(-1, x.shape[-1]), packed, bias, "none", [], "")
    return rows.reshape(*x.shape[:-1], width)


def _load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer, BertTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if not (path / "tokenizer_config.json").is_file() and not (path / "tokenizer.json").is_file():
                tokenizer = _bare_vocab_tokenizer(path, BertTokenizer)
            else:
                tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(f"Cannot load a tokenizer from {path}: {first_line(err)}") from err
    if not getattr(tokenizer, "is_fast", True) and not hasattr(tokenizer, "backend_tokenizer"):
        raise ModelError(f"The tokenizer in {path} cannot map tokens to characters: use a fast tokenizer.")
    return tokenizer


def _bare_vocab_tokenizer(path: Path, bert_tokenizer: Any) -> PreTrainedTokenizerBase:
    """A folder with only a WordPiece vocab.txt (the SpanBERT tokenizer repo) states no casing;
    loaded naively it lowercases. Read the casing off the vocabulary instead."""
    vocab = path / "vocab.txt"
    if not vocab.is_file():
        raise ModelError(f"{path} has no tokenizer files (tokenizer.json, tokenizer_config.json or vocab.txt).")
    cased = _vocab_is_cased(vocab)
    log.info("%s has no tokenizer_config.json; its vocabulary is %s", path, "cased" if cased else "uncased")
    return bert_tokenizer.from_pretrained(str(path), do_lower_case=not cased, local_files_only=True)


def _vocab_is_cased(vocab: Path) -> bool:
    """True when a WordPiece vocabulary holds capitalised words (an uncased one holds none)."""
    words = vocab.read_text(encoding="utf-8").split("\n")
    capitals = sum(1 for w in words if w[:1].isupper() and not w.startswith("["))
    return capitals > max(10, len(words) // 100)


# --- hub resolution ----------------------------------------------------------------------------


def _resolve(name: str, what: str, default_pair: bool) -> Path:
    """A local folder for ``name``: the folder itself, or the hub snapshot (cache first)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists() or _looks_like_path(name):
        raise ModelError(f"The {what} folder {name} does not exist: pass a folder or a hub id.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    cache = _hub_cache()
    try:
        return Path(snapshot_download(name, cache_dir=cache, local_files_only=True))
    except HFValidationError as err:
        raise ModelError(f"{name!r} is neither a folder nor a hub id (owner/name).") from err
    except (LocalEntryNotFoundError, OSError):
        pass
    if _offline():
        raise ModelError(_how_to_get(name, what, default_pair, "HF_HUB_OFFLINE is set", cache))
    if not _hub_reachable():
        raise ModelError(_how_to_get(name, what, default_pair, "the hub cannot be reached", cache))
    log.info("downloading %s %s to %s", what, name, cache)
    try:
        return Path(snapshot_download(name, cache_dir=cache, allow_patterns=_HUB_FILES, etag_timeout=5,
                                      endpoint=os.environ.get("HF_ENDPOINT") or None))
    except Exception as err:  # hub errors come in many kinds; every one means "cannot get it"
        raise ModelError(_how_to_get(name, what, default_pair, first_line(err), cache)) from err


def _how_to_get(name: str, what: str, default_pair: bool, reason: str, cache: str) -> str:
    fetch = f"`hf download {name}`"
    if default_pair and name == DEFAULT_MODEL:
        fetch += f" and `hf download {DEFAULT_TOKENIZER}`"
    folder = "--model DIR" if what == "model" else "--tokenizer DIR"
    return (f"The reader {what} {name} is not in the Hugging Face cache ({cache}) and {reason}: "
            f"run {fetch} while online, or pass {folder} (a local folder).")


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _hub_cache() -> str:
    # Read the environment now, not at import: HF_HOME / HF_HUB_CACHE may change after import.
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return constants.HF_HUB_OFFLINE or any(f.upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _hub_reachable() -> bool:
    """Can a TCP connection to the hub be opened within a few seconds? (DNS included: a thread
    bounds it, since getaddrinfo ignores socket timeouts.) Saves minutes of client retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S + 0.5)
    return bool(result and result[0])
