"""The PNGs of ``docqa eval``: recall@k curve, F1 vs mu, confidence reliability diagram.

matplotlib is an optional extra (``pip install 'docqa[plots]'``): without it no plot is
written and the evaluation itself is unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docqa.evaluate import EvalReport


def write_plots(report: EvalReport, recall_curve: Sequence[float], out: Path) -> list[Path]:
    """The plots that apply to this report, written into ``out``; [] without matplotlib.
    ``recall_curve[k - 1]`` is recall@k (%)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = [_recall_curve(plt, report, recall_curve, out / "recall_at_k.png")]
    if report.mu_sweep:
        written.append(_mu_curve(plt, report, out / "f1_vs_mu.png"))
    if report.calibration:
        written.append(_reliability(plt, report, out / "reliability.png"))
    return written


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _recall_curve(plt: Any, report: EvalReport, recall_curve: Sequence[float], path: Path) -> Path:
    ks = list(range(1, len(recall_curve) + 1))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, recall_curve, marker="o", markersize=3)
    ax.axvline(report.k, color="grey", linestyle=":", label=f"passages read (k={report.k})")
    ax.set(xlabel="k (passages retrieved)", ylabel="recall@k (%)", ylim=(0, 100), xticks=[1, 5, 10, 15, 20],
           title=f"Retrieval recall ({report.answerable} questions)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(plt, fig, path)


def _mu_curve(plt: Any, report: EvalReport, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    mus = [p.mu for p in report.mu_sweep]
    ax.plot(mus, [p.f1 for p in report.mu_sweep], marker="o", label="open F1 (no threshold)")
    ax.plot(mus, [p.em for p in report.mu_sweep], marker="s", label="open EM (no threshold)")
    ax.axhline(report.gold_f1, color="grey", linestyle="--", label="gold-paragraph F1")
    ax.set(xlabel="mu (weight of the reader; 1 - mu: retriever)", ylabel="%", title="Answer quality vs mu")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(plt, fig, path)


def _reliability(plt: Any, report: EvalReport, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    bins = report.calibration
    ax.bar([(b.lo + b.hi) / 2 for b in bins], [b.accuracy / 100 for b in bins],
           width=[0.9 * (b.hi - b.lo) for b in bins], alpha=0.7, label="fraction exactly right")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for b in bins:
        ax.annotate(str(b.count), ((b.lo + b.hi) / 2, b.accuracy / 100), ha="center", va="bottom", fontsize=7)
    ax.set(xlabel="confidence of the shown answer", ylabel="accuracy (EM)", xlim=(0, 1), ylim=(0, 1.05),
           title=f"Reliability (ECE {report.ece:.1f} points)")
    ax.legend(loc="upper left")
    return _save(plt, fig, path)
