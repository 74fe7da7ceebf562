"""The ``docqa`` command: a thin click layer over ``docqa.api.DocQA``.

stdout carries results only (human text, or JSON with ``--json``); progress and errors go to
stderr. Library errors (``DocQAError``) become one line and exit code 1; usage errors exit 2.
torch/transformers are imported only when a command needs the reader.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click

from docqa.api import DocQA, batch_questions, batch_record
from docqa.errors import BadQuestion, DocQAError
from docqa.evaluate import SCOPES, EvalReport, evaluate, parse_sweep
from docqa.retrieve import RETRIEVERS
from docqa.types import (
    DEFAULT_MAX_MB, DEFAULT_OCR_PAGE_TIMEOUT_S, DEFAULT_TIMEOUT_S, OCR_MODES, PAGE_MEANS, AskResult, BatchQuestion,
    FileResult, IndexReport, Limits, OcrOptions, SearchResult,
)


class _Group(click.Group):
    """Turns library errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DocQAError as err:
            raise click.ClickException(str(err)) from err
        except sqlite3.DatabaseError as err:  # a damaged index found mid-read
            raise click.ClickException(
                f"the index could not be read ({err}); if it is damaged, delete it and re-run `docqa index`"
            ) from err


def _json(obj: Any, one_line: bool = False) -> None:
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    click.echo(json.dumps(data, ensure_ascii=False, indent=None if one_line else 2))


def _questions(question: str | None) -> list[str] | None:
    """The question argument, else each non-empty line of stdin when it is not a terminal (one
    question per line); None means 'prompt'."""
    if question is not None:
        return [question]
    if not sys.stdin.isatty():
        lines = [line.strip() for line in sys.stdin.read().splitlines()]
        return [line for line in lines if line] or [""]  # nothing at all: the empty-question error
    return None


class _QuestionCommand(click.Command):
    """A question that starts with "-" ("-40 degrees is how cold?") is the question, not an
    unknown option: no ``--`` needed. Option values ("--threshold -1") stay values."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = {n for p in self.get_params(ctx) if isinstance(p, click.Option) for n in p.opts + p.secondary_opts}
        takes_value = {n for p in self.get_params(ctx) if isinstance(p, click.Option) and not p.is_flag
                       and not p.count for n in p.opts}
        value_next = False
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if value_next:
                value_next = False
                continue
            name = arg.split("=", 1)[0]
            if name in names:
                value_next = name in takes_value and "=" not in arg
            elif not arg.startswith("--") and arg[:2] in takes_value and " " not in arg:  # -k5
                pass
            elif arg.startswith("-") and arg != "-":
                args = [*args[:i], *args[i + 1:], "--", arg]
                break
        return super().parse_args(ctx, args)


def _each_question(texts: list[str], answer: Callable[[str], Any], as_json: bool) -> None:
    """Answers each question; several (stdin lines) get a heading each, or with ``--json`` one
    JSON object per line (JSON Lines)."""
    for text in texts:
        if len(texts) > 1 and not as_json:
            click.echo(click.style(f"? {text}", bold=True))
        result = answer(text)
        if as_json:
            _json(result, one_line=len(texts) > 1)


index_option = click.option(
    "-i", "--index", "index", envvar="DOCQA_INDEX", default=None, metavar="INDEX",
    help="Index file, or a bare name meaning ./indexes/NAME.db [env DOCQA_INDEX; default ./indexes/docqa.db].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
retriever_option = click.option(
    "--retriever", type=click.Choice(RETRIEVERS), default="auto", show_default=True,
    help="auto: hybrid where the index has passage vectors, else fts5. hybrid: BM25 fused with "
         "dense vectors (needs `docqa index --embed`).",
)
ray_option = click.option(
    "--ray", "ray", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
    help="Run on Ray: join the cluster at ADDRESS, or with no value $RAY_ADDRESS, else a new local "
         "instance (pip install 'docqa[ray]'). Put it after the arguments, or write --ray=ADDRESS.",
)
path_option = click.option(
    "--path", "paths", multiple=True, metavar="GLOB",
    help="Only documents whose path matches GLOB (repeatable).",
)


def reader_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--model", envvar="DOCQA_MODEL", default=None,
                     help="Hub id or local folder of an extractive-QA model [env DOCQA_MODEL]."),
        click.option("--tokenizer", default=None, help="Tokenizer hub id or folder (default: the model's)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto",
                     show_default=True),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "int8", "fp16"]),
                     default="auto", show_default=True, help="fp16 is for CUDA only."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads for the reader (default: all cores)."),
    ]):
        f = option(f)
    return f


def ray_readers_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--ray, and the actor pool of readers that reads the questions there."""
    for option in reversed([
        ray_option,
        click.option("--actors", type=click.IntRange(min=1), default=None,
                     help="With --ray: readers in the actor pool (default: one per CPU, or per --gpus-per-actor)."),
        click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="With --ray: GPUs each reader holds."),
    ]):
        f = option(f)
    return f


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="docqa")
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """Ask questions of a folder of documents; get the exact answer with file, page and offsets."""
    if verbose:
        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """The `docqa` command, in a process of its own."""
    # transformers imports scikit-learn and scipy whenever they are installed, for a metric of
    # assisted text generation and the losses of object-detection models docqa never uses: ~1 s
    # of every cold `docqa ask`. The dense extra installs them (sentence-transformers needs
    # them). docqa's own process never uses them, so the command hides them from transformers
    # (None in sys.modules reads as "not installed"); the library, in a user's process, does not.
    for unused in ("sklearn", "scipy"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    cli()


# -- index / remove / info ------------------------------------------------------------------


@contextmanager
def _on_ray(ray: str | None) -> Iterator[None]:
    """With --ray: while the run lasts, Ray's driver thread prints cluster events (a node that
    died) to sys.stdout; they go to stderr so stdout carries results only. Leaves the cluster
    after the run (a local instance docqa started stops)."""
    if ray is None:
        yield
        return
    from docqa.distributed import disconnect

    stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        try:
            disconnect()
        finally:
            sys.stdout = stdout


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[FileResult], None] | None]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    # Counts pages, not files: a scanned book (OCR, seconds a page) weighs what it costs.
    with tqdm(unit=" pages", file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        files = 0

        def update(result: FileResult) -> None:
            nonlocal files
            files += 1
            bar.set_postfix_str(f"{files} files, {result.status}: {result.path}"[-70:], refresh=False)
            bar.update(result.pages)

        yield update


def _summary(report: IndexReport) -> None:
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed, {report.failed} failed, {report.skipped} skipped -> {report.index}"
    )
    ocr_pages = sum(f.ocr_pages for f in report.files if f.status in ("indexed", "updated"))
    if ocr_pages:
        click.echo(f"{ocr_pages} pages read by OCR (Tesseract)")
    for f in report.files:
        if f.status not in ("indexed", "updated", "unchanged", "removed", "unsupported"):
            click.echo(f"  {f.status:<10} {f.path}: {f.message}")
    if report.interrupted:
        click.echo("interrupted: every document listed above is complete; re-run to finish")


class _PathOrUri(click.Path):
    """An existing local path, or an object-store URI (s3://BUCKET/PREFIX), kept as text."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from docqa.objectstore import is_uri

        return value if isinstance(value, str) and is_uri(value) else super().convert(value, param, ctx)


def indexing_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """PATHS, the index and what one file may cost: shared by `index` and `watch`."""
    for option in reversed([
        click.argument("paths", nargs=-1, required=True, type=_PathOrUri(exists=True, path_type=Path)),
        index_option,
        click.option("--password", "passwords", multiple=True, help="Password to try on encrypted PDFs (repeatable)."),
        click.option("--passwords-file", type=click.File("r"), default=None,
                     help="File with one password per line to try on encrypted PDFs."),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Extraction processes (default: all cores)."),
        click.option("--max-size", type=click.FloatRange(min=0), default=DEFAULT_MAX_MB, show_default=True,
                     help="Skip files bigger than this many MB (status too-large)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT_S, show_default=True,
                     help="Seconds one file's extraction may take (status timeout)."),
        click.option("--ocr", "ocr_mode", type=click.Choice(OCR_MODES), default="auto", show_default=True,
                     help="Read PDF pages with Tesseract: auto = pages without a usable text layer, "
                          "force = every page, off = never. Changing it re-extracts the PDFs it affects."),
        click.option("--ocr-lang", default="eng", show_default=True, metavar="LANGS",
                     help="Tesseract languages, e.g. eng+deu (each needs its pack, e.g. tesseract-ocr-deu)."),
        click.option("--ocr-timeout", type=click.FloatRange(min=0.1), default=DEFAULT_OCR_PAGE_TIMEOUT_S,
                     show_default=True, help="Seconds OCR may take on one page (--timeout still caps the file)."),
    ]):
        f = option(f)
    return f


def _index_settings(passwords: tuple[str, ...], passwords_file: Any, max_size: float,
                    timeout: float) -> tuple[tuple[str, ...], Limits]:
    if passwords_file is not None:
        passwords += tuple(line.rstrip("\r\n") for line in passwords_file if line.strip())
    return passwords, Limits(max_bytes=int(max_size * 1024 * 1024), timeout_s=timeout)


@cli.command()
@indexing_options
@click.option("--embed/--no-embed", default=None,
              help="Store a dense vector per new passage for semantic search (default: where the dense "
                   "extra is installed, pip install 'docqa[dense]', or the index already has vectors).")
@click.option("--embedder", default=None, metavar="MODEL",
              help="Embedding model: a sentence-transformers model folder (default: the index's, else "
                   "$DOCQA_EMBEDDER, else all-MiniLM-L6-v2). Changing it re-embeds every passage.")
@ray_option
@click.option("--ship-max", type=click.FloatRange(min=0), default=None, metavar="MB",
              help="With --ray on a cluster: files up to this size travel with their tasks; bigger ones "
                   "must be at the same path on every node [default: 32].")
@json_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def index(paths: tuple[Path | str, ...], index: str | None, passwords: tuple[str, ...], passwords_file: Any,
          workers: int | None, max_size: float, timeout: float, ocr_mode: str, ocr_lang: str,
          ocr_timeout: float, embed: bool | None, embedder: str | None, ray: str | None, ship_max: float | None,
          as_json: bool, quiet: bool) -> None:
    """Index PATHS (folders or files: PDF, Word .docx, PowerPoint .pptx, EPUB, HTML, Markdown, text)
    into one SQLite file. Scanned PDF pages are read with Tesseract (--ocr). A PATH may be an
    object-store URI (s3://BUCKET/PREFIX, gs://...; pip install 'docqa[cloud]').

    Re-running only touches what changed; files gone from an indexed folder are removed.
    """
    passwords, limits = _index_settings(passwords, passwords_file, max_size, timeout)
    with DocQA(index) as qa:
        with _on_ray(ray), _progress(quiet) as progress:
            report = qa.index(list(paths), passwords=passwords, workers=workers, limits=limits,
                              ocr=OcrOptions(ocr_mode, ocr_lang, ocr_timeout), progress=progress,
                              ray=False if ray is None else ray, ship_mb=ship_max, embed=False)
        if not as_json:
            _summary(report)  # before embedding, which may fail on its own (no model installed)
        model = qa.embedder_for(True if embedder else embed, embedder)
        if model is not None and not report.interrupted:
            with _count_progress(quiet, "passages") as counted:
                embedded = qa.embed(model, progress=counted)
            if not as_json:
                click.echo(f"{embedded} passages embedded")
    if as_json:
        _json(report)
    if report.interrupted:
        sys.exit(130)


@cli.command()
@indexing_options
def watch(paths: tuple[Path | str, ...], index: str | None, passwords: tuple[str, ...], passwords_file: Any,
          workers: int | None, max_size: float, timeout: float, ocr_mode: str, ocr_lang: str,
          ocr_timeout: float) -> None:
    """Index PATHS, then keep the index in sync as files are added, changed, moved or deleted.

    Each burst of changes is one `docqa index` run (same rules, lock and statuses), once the
    files in it have stopped changing. One line per change on stderr; Ctrl-C stops.
    """
    from docqa.watch import Watcher

    if any(isinstance(p, str) for p in paths):  # a URI: there are no file events to follow
        raise click.UsageError("watch follows local folders; index an object-store URI with `docqa index URI` "
                               "(re-runs only read what changed)")
    passwords, limits = _index_settings(passwords, passwords_file, max_size, timeout)
    with DocQA(index) as qa:
        watcher = Watcher(qa, list(paths), say=lambda line: click.echo(line, err=True),
                          passwords=passwords, workers=workers, limits=limits,
                          ocr=OcrOptions(ocr_mode, ocr_lang, ocr_timeout))
        try:
            watcher.run()
        except KeyboardInterrupt:
            pass
    click.echo("stopped watching", err=True)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@index_option
def remove(paths: tuple[str, ...], index: str | None) -> None:
    """Drop documents (by indexed or absolute path) from the index."""
    with DocQA(index) as qa:
        for path in qa.remove(list(paths)):
            click.echo(f"removed {path}")


@cli.command()
@index_option
@json_option
def info(index: str | None, as_json: bool) -> None:
    """Counts, settings and the problem files of an index."""
    with DocQA(index) as qa:
        result = qa.info()
    if as_json:
        data = dataclasses.asdict(result)
        _json(data)
        return
    click.echo(f"index:     {result.index} ({result.size_bytes / 1e6:.1f} MB, schema {result.schema_version})")
    click.echo(f"documents: {result.documents} ({', '.join(f'{k} {v}' for k, v in result.by_status.items()) or 'none'})")
    click.echo(f"pages:     {result.pages}" + (f" ({result.ocr_pages} read by OCR)" if result.ocr_pages else ""))
    for kind, n in result.pages_by_kind.items():
        click.echo(f"  {kind:<6} {n:>7}  1 page = {PAGE_MEANS.get(kind, 'page')}")
    click.echo(f"passages:  {result.passages}")
    if result.embedding_model:
        click.echo(f"vectors:   {result.vectors} ({result.embedding_model}; search is hybrid)")
    click.echo("settings:  " + ", ".join(f"{k}={v}" for k, v in sorted(result.settings.items())))
    if result.problems:
        click.echo("problems:")
        for p in result.problems:
            click.echo(f"  {p.status:<10} {p.path}: {p.message}")


# -- search / ask ---------------------------------------------------------------------------


@cli.command(cls=_QuestionCommand)
@click.argument("question", required=False)
@index_option
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Passages to return.")
@retriever_option
@path_option
@json_option
def search(question: str | None, index: str | None, k: int, retriever: str,
           paths: tuple[str, ...], as_json: bool) -> None:
    """Show the passages that best match QUESTION (BM25, plus meaning where the index has
    vectors). QUESTION may come on stdin, one per line."""
    texts = _questions(question)
    if texts is None:
        raise click.UsageError("give a question, e.g. docqa search 'who wrote the report?'")
    with DocQA(index, retriever=retriever) as qa:
        def one(text: str) -> SearchResult:
            result = qa.search(text, k=k, paths=list(paths) or None)
            if not as_json:
                _print_hits(result)
            return result

        _each_question(texts, one, as_json)


def _print_hits(result: SearchResult) -> None:
    if not result.hits:
        click.echo("no passages match")
    for h in result.hits:
        pages = f"page {h.page}" if h.page == h.last_page else f"pages {h.page}-{h.last_page}"
        click.echo(click.style(f"{h.rank}. {h.path}, {pages}", bold=True) + f"  (score {h.score:.2f})")
        click.echo(f"   {_one_line(h.text)}")


def _one_line(text: str, width: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@cli.command(cls=_QuestionCommand)
@click.argument("question", required=False)
@index_option
@click.option("-n", "top_n", type=click.IntRange(min=1), default=3, show_default=True, help="Answers to return.")
@click.option("-k", "passages", type=click.IntRange(min=1), default=10, show_default=True, help="Passages to read.")
@reader_options
@click.option("--max-answer-len", type=click.IntRange(min=1), default=30, show_default=True, help="In tokens.")
@click.option("--mu", type=click.FloatRange(0, 1), default=None,
              help="Weight of the reader vs the retriever in answer scores (default: tuned).")
@click.option("--threshold", type=float, default=None,
              help="Abstain when the top answer's confidence is below this (default: tuned).")
@path_option
@retriever_option
@click.option("--explain", is_flag=True, help="Show the reader and retriever parts of every score.")
@click.option("--no-server", is_flag=True,
              help="Read here even when a `docqa serve` on this index and model could answer.")
@json_option
@click.option("--batch", "batch", type=click.File("r", encoding="utf-8"), default=None, metavar="FILE",
              help="Answer every question of FILE ('-': stdin): one per line, or JSON Lines "
                   '{"id", "question", "paths"?}; prints JSON Lines, one result per question, in order.')
@click.option("--out", type=click.File("w", encoding="utf-8", lazy=True), default="-", metavar="FILE",
              help="With --batch: write the results to FILE instead of stdout.")
@ray_readers_options
@click.option("-q", "--quiet", is_flag=True, help="With --batch: no progress bar.")
def ask(question: str | None, index: str | None, top_n: int, passages: int, model: str | None,
        tokenizer: str | None, device: str, precision: str, threads: int | None, max_answer_len: int,
        mu: float | None, threshold: float | None, paths: tuple[str, ...], retriever: str, explain: bool,
        no_server: bool, as_json: bool, batch: TextIO | None, out: TextIO, ray: str | None, actors: int | None,
        gpus_per_actor: float, quiet: bool) -> None:
    """Answer QUESTION from the indexed documents, with citations.

    QUESTION may come on stdin, one per line (with --json: one JSON object per line); with none
    on a terminal, an interactive prompt keeps the model loaded. When a `docqa serve` on this
    index with the same model and settings is running, the question goes to it (the model is
    already loaded there); the output is the same.
    With --batch, answers a file of questions (add --ray to read them on a Ray cluster).
    """
    from docqa.handoff import find_server
    from docqa.rank import DEFAULT_MU, DEFAULT_THRESHOLD

    if batch is None and (ray is not None or actors is not None or gpus_per_actor):
        raise click.UsageError("--ray, --actors and --gpus-per-actor go with --batch FILE")
    if batch is not None and question is not None:
        raise click.UsageError("give a QUESTION or --batch FILE, not both")
    texts = None if batch is not None else _questions(question)
    with DocQA(index, model=model, tokenizer=tokenizer, device=device, precision=precision,
               threads=threads, max_answer_len=max_answer_len, retriever=retriever,
               threshold=DEFAULT_THRESHOLD if threshold is None else threshold) as qa:
        if batch is not None:
            qa.store  # fail now, with one line, if the index is unusable
            items = list(batch_questions(batch, paths=paths or None))
            with _on_ray(ray), _count_progress(quiet, "questions") as progress:
                answers = qa.ask_many((i for i in items if isinstance(i, BatchQuestion)), top_k=top_n,
                                      passages=passages, mu=mu, ray=False if ray is None else ray,
                                      actors=actors, gpus_per_actor=gpus_per_actor)
                for n, item in enumerate(items, 1):
                    answer = next(answers) if isinstance(item, BatchQuestion) else item
                    out.write(json.dumps(batch_record(answer), ensure_ascii=False) + "\n")
                    if progress is not None:
                        progress(n, len(items))
            return
        server = None if no_server else find_server(qa, mu)

        def answer(q: str) -> AskResult:
            result = server.ask(q, top_n, passages, paths) if server is not None else None
            if result is None:
                result = qa.ask(q, top_k=top_n, passages=passages, paths=list(paths) or None, mu=mu)
            if not as_json:
                _print_answers(result, (DEFAULT_MU if mu is None else mu) if explain else None)
            return result

        if texts is not None:
            _each_question(texts, answer, as_json)
            return
        qa.store  # fail now, not after the first question, if the index is unusable
        while True:
            try:
                q = click.prompt("question", prompt_suffix="> ", default="", show_default=False, err=True)
            except (EOFError, click.Abort):
                break
            if q.strip() in ("", "exit", "quit"):
                break
            try:
                _each_question([q], answer, as_json)
            except BadQuestion as err:
                click.echo(f"Error: {err}", err=True)


def _print_answers(result: AskResult, explain_mu: float | None) -> None:
    """Human output; with ``explain_mu`` set, each score is shown as its two weighted parts."""
    if result.abstained:
        if not result.passages:
            click.echo("not found: no passage of the indexed documents matches the question")
            return
        why = " (none of them is about this question)" if result.off_topic else ""
        click.echo(f"not found in the indexed documents{why}; the closest passages:")
        for h in result.passages:
            click.echo(click.style(f"  {h.path}, page {h.page}", bold=True) + f"  {_one_line(h.text, 200)}")
        return
    for i, a in enumerate(result.answers, 1):
        c = a.citations[0]
        pages = f"page {c.page}" if c.last_page in (0, c.page) else f"pages {c.page}-{c.last_page}"
        click.echo(click.style(f"{i}. {a.text}", bold=True) + f"  ({a.confidence:.0%})  {c.path}, {pages}"
                   + (" (OCR: may hold recognition errors)" if c.ocr else ""))
        lo, hi = c.start - c.context_start, c.end - c.context_start
        before, after = (re.sub(r"\s+", " ", part) for part in (c.context[:lo], c.context[hi:]))
        click.echo("   " + before.lstrip() + click.style(c.context[lo:hi], fg="yellow", bold=True) + after.rstrip())
        if len(a.citations) > 1:
            click.echo("   also: " + "; ".join(f"{o.path}, page {o.page}" for o in a.citations[1:4]))
        if explain_mu is not None:
            others = f" + evidence from {len(a.citations) - 1} other place(s)" if len(a.citations) > 1 else ""
            click.echo(f"   score {a.score:.3f} = {explain_mu:g} x reader {a.reader_score:.3f} + "
                       f"{1 - explain_mu:g} x retriever {a.retriever_score:.3f}{others}")


# -- eval -----------------------------------------------------------------------------------


def _mu_sweep(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    try:
        return None if value is None else parse_sweep(value)
    except DocQAError as err:
        raise click.BadParameter(str(err)) from err


@contextmanager
def _count_progress(quiet: bool, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """A (done, total) progress callback drawing a bar on stderr; None when quiet or piped."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: list[Any] = []  # made on the first call, when the total is known

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True, leave=False))
        bars[0].update(done - bars[0].n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


@cli.command("eval")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@reader_options
@click.option("-k", "passages", type=click.IntRange(min=1), default=10, show_default=True,
              help="Passages read per question.")
@click.option("-i", "--index", default=None, metavar="INDEX",
              help="Evaluation index file (default: indexes/eval-<hash>.db, reused while the dataset and "
                   "splitter settings match).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most N questions.")
@click.option("--articles", default=None, metavar="A:B",
              help="Evaluate the questions of articles A..B-1 only; the whole file is still indexed.")
@click.option("--mu", type=click.FloatRange(0, 1), default=None,
              help="Weight of the reader vs the retriever (default: tuned).")
@click.option("--mu-sweep", callback=_mu_sweep, default=None, metavar="LO:HI:STEP",
              help="Also score each mu in LO..HI (e.g. 0:1:0.1), answering every question (no threshold), "
                   "from the same reading; plots F1 vs mu.")
@click.option("--threshold", type=float, default=None,
              help="Abstain when the top answer's confidence is below this (default: tuned).")
@click.option("--widen", type=click.IntRange(min=0), default=None,
              help="Characters of neighbouring text read on each side of a passage (default: tuned).")
@click.option("--passage-words", type=click.IntRange(min=10), default=None,
              help="Words per passage in the evaluation index (default: docqa's).")
@click.option("--overlap-words", type=click.IntRange(min=0), default=None,
              help="Words shared by neighbouring passages (default: docqa's).")
@click.option("--retrieval-only", is_flag=True, help="Measure retrieval recall only (no model needed).")
@retriever_option
@click.option("--scope", type=click.Choice(SCOPES), default="open", show_default=True,
              help="document: ask each question within its own article only (like ask --path).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.json, predictions.jsonl, predictions.json and PNG plots.")
@json_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@ray_readers_options
def eval_(dataset: Path, model: str | None, tokenizer: str | None, device: str, precision: str,
          threads: int | None, passages: int, index: str | None, limit: int | None, articles: str | None,
          mu: float | None, mu_sweep: tuple[float, ...] | None, threshold: float | None, widen: int | None,
          passage_words: int | None, overlap_words: int | None, retrieval_only: bool, retriever: str,
          scope: str, out: Path | None, as_json: bool, quiet: bool, ray: str | None, actors: int | None,
          gpus_per_actor: float) -> None:
    """Measure answer quality on a SQuAD-format DATASET (v1.1 or v2.0).

    Indexes every article as one document, then reports retrieval recall@1/5/10/20, open EM/F1
    (the full pipeline), gold-paragraph EM/F1 (the reader alone) and time per question.
    """
    with _on_ray(ray), _count_progress(quiet, "questions") as progress:
        report = evaluate(
            dataset, model=model, tokenizer=tokenizer, device=device, precision=precision, threads=threads,
            k=passages, index=index, limit=limit, articles=articles, mu=mu, mu_sweep=mu_sweep,
            threshold=threshold, widen=widen, passage_words=passage_words, overlap_words=overlap_words,
            retrieval_only=retrieval_only, retriever=retriever, scope=scope, out=out, progress=progress,
            ray=False if ray is None else ray, actors=actors, gpus_per_actor=gpus_per_actor,
        )
    _json(report) if as_json else _print_report(report)


def _print_report(r: EvalReport) -> None:
    click.echo(f"dataset    {r.dataset}: {r.questions} questions ({r.answerable} answerable)")
    click.echo(f"index      {r.index} ({', '.join(f'{k}={v}' for k, v in sorted(r.settings.items()))})")
    click.echo(f"recall@k   ({r.retriever}, {r.scope}) " + "  ".join(f"@{k} {v:.1f}" for k, v in r.recall.items()))
    if r.open_f1 is None:
        click.echo(f"time       retrieve {r.retrieve_ms:.1f} ms per question")
    else:
        _print_answer_quality(r)
    for path in r.files:
        click.echo(f"wrote      {path}")


def _print_answer_quality(r: EvalReport) -> None:
    click.echo(f"model      {r.model}")
    click.echo(f"settings   k={r.k} mu={r.mu:g} threshold={r.threshold:g} widen={r.widen}")
    click.echo(f"read       a gold answer is in what was read for {r.read_recall:.1f}%")
    click.echo(f"{'':<16}{'EM':>7}{'F1':>7}")
    click.echo(f"{'open':<16}{r.open_em:>7.1f}{r.open_f1:>7.1f}")
    click.echo(f"{'gold paragraph':<16}{r.gold_em:>7.1f}{r.gold_f1:>7.1f}")
    click.echo(f"{'open / gold':<16}{r.open_gold_ratio:>14.1%}")
    click.echo(f"abstained  {r.abstain_rate:.1f}% of answerable questions"
               + ("" if r.unanswerable_abstain_rate is None
                  else f", {r.unanswerable_abstain_rate:.1f}% of {r.unanswerable} unanswerable"))
    if r.below_threshold_em is not None:
        click.echo(f"           EM of the top answers below the threshold {r.below_threshold_em:.1f}%")
    click.echo(f"confidence ECE {r.ece:.1f} points")
    click.echo(f"time       retrieve {r.retrieve_ms:.1f} ms, read {r.read_ms:.1f} ms per question")
    if r.mu_sweep:
        click.echo(f"{'mu':>6}{'EM':>7}{'F1':>7}   (every question answered: no threshold)")
        for p in r.mu_sweep:
            click.echo(f"{p.mu:>6.2f}{p.em:>7.1f}{p.f1:>7.1f}")


# -- serve ----------------------------------------------------------------------------------

SERVER_MODULES = ("fastapi", "fastapi_offline", "uvicorn", "starlette", "pydantic")


@cli.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, envvar="DOCQA_HOST",
              help="Interface to listen on; anything but loopback lets other machines read the documents.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, envvar="DOCQA_PORT")
@reader_options
def serve(index: str | None, host: str, port: int, model: str | None, tokenizer: str | None,
          device: str, precision: str, threads: int | None) -> None:
    """Answer questions over HTTP, with a web page at http://HOST:PORT/ and API docs at /docs.

    The model loads once, in the background; the index is opened read-only.
    """
    try:
        from docqa.server import serve as run_server
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in SERVER_MODULES:
            raise
        raise click.ClickException("docqa serve needs FastAPI and uvicorn: pip install 'docqa[server]'") from err
    with DocQA(index, model=model, tokenizer=tokenizer, device=device, precision=precision, threads=threads) as qa:
        qa.store  # fail now, with one line, if the index is missing or unusable
        run_server(qa, host=host, port=port)


# -- mcp ------------------------------------------------------------------------------------


@cli.command()
@index_option
@reader_options
def mcp(index: str | None, model: str | None, tokenizer: str | None, device: str, precision: str,
        threads: int | None) -> None:
    """Serve the index to AI assistants as MCP tools over stdio (search, ask, read_page,
    list_documents). Read-only; the model loads on the first ask. Register the command
    `docqa mcp -i INDEX` with your MCP client (see the README)."""
    try:
        from docqa.mcp_server import serve_stdio
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "mcp":
            raise
        raise click.ClickException("docqa mcp needs the MCP SDK: pip install 'docqa[mcp]'") from err
    with DocQA(index, model=model, tokenizer=tokenizer, device=device, precision=precision, threads=threads) as qa:
        qa.store  # fail now, with one line, if the index is missing or unusable
        serve_stdio(qa)
