"""Tiny real BERT QA models for tests, built offline from a config and the shared cased vocab.

- ``build_tiny_random(path)``: random weights; exercises loading, windowing and decoding.
- ``train_tiny_qa(path)``: a reader of templated facts ("The code of Zorbia is Quelm." /
  "What is the code of Zorbia?" -> "Quelm"), built and trained here in seconds, so end-to-end
  tests can check that the right answer comes back from the right file and page. Names are made
  up at random, so it must find the value of the asked entity, not recall names it has seen.

Both are saved with ``save_pretrained`` together with their (cased) tokenizer, so
``Reader(model=str(path))`` loads them the way it loads a real model.

Writing documents with facts for a test::

    gen = FactGenerator(seed=7)
    passage = gen.passage(n_facts=6)          # ~90 words: 6 facts among 8 filler sentences
    fact = passage.facts[0]
    fact.question  # "What is the code of Zorbia?"
    fact.value     # "Quelm"; passage.text[passage.answer_start(fact):...] == fact.value
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import BertConfig, PreTrainedTokenizerBase

CASED_VOCAB = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tokenizers" / "bert-base-cased"

ATTRIBUTES = ("code", "capital", "colour", "motto", "founder", "river", "mascot", "password")
FACT_TEMPLATES = (
    "The {a} of {e} is {v}.",
    "{e}'s {a} is {v}.",
    "The {a} for {e} is {v}.",
    "In {e}, the {a} is {v}.",
)
QUESTION_TEMPLATES = (
    "What is the {a} of {e}?",
    "What is {e}'s {a}?",
    "Which {a} does {e} have?",
    "What {a} is used in {e}?",
)
# Sentences that name entities or other made-up names but state no fact: the model must not
# answer with any capitalised word near the asked entity. (No "is" in them, and no entity right
# before a sentence's end, so a fact's subject is always the nearest name before its value.)
FILLERS = (
    "Nothing more was recorded about {e} that year.",
    "Travellers often visit {e} in the spring.",
    "{e} lies beyond the grey hills.",
    "Many stories have been written about {e} and {n}.",
    "The people of {e} trade with {n}.",
    "Some say {e} was once ruled by {n}.",
    "It rained for days.",
    "The old maps are hard to read.",
)
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr",
           "pl", "qu", "sk", "st", "tr", "zh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "y")
_CODAS = ("", "", "", "n", "m", "l", "r", "x", "sk", "th", "lm")


def make_name(rng: random.Random) -> str:
    """A pronounceable made-up capitalised name such as "Zorbia" or "Quelm"."""
    syllables = rng.randint(1, 3)
    name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (name + rng.choice(_CODAS)).capitalize()


@dataclass(frozen=True)
class Fact:
    entity: str
    attribute: str
    value: str
    template: int = 0  # index into FACT_TEMPLATES
    question_template: int = 0  # index into QUESTION_TEMPLATES

    @property
    def sentence(self) -> str:
        return FACT_TEMPLATES[self.template].format(a=self.attribute, e=self.entity, v=self.value)

    @property
    def question(self) -> str:
        return QUESTION_TEMPLATES[self.question_template].format(a=self.attribute, e=self.entity)


@dataclass(frozen=True)
class FactPassage:
    text: str
    facts: tuple[Fact, ...]
    answer_starts: tuple[int, ...]  # offset of each fact's value in ``text``

    def answer_start(self, fact: Fact) -> int:
        return self.answer_starts[self.facts.index(fact)]


class FactGenerator:
    """Deterministic source of facts and passages; names never repeat within one generator."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._used: set[str] = set()

    def name(self) -> str:
        while True:
            name = make_name(self.rng)
            if name not in self._used and len(name) > 2:
                self._used.add(name)
                return name

    def facts(self, n: int) -> list[Fact]:
        """``n`` facts about ``n`` different entities (attributes repeat across entities)."""
        return [
            Fact(
                entity=self.name(),
                attribute=self.rng.choice(ATTRIBUTES),
                value=self.name(),
                template=self.rng.randrange(len(FACT_TEMPLATES)),
                question_template=self.rng.randrange(len(QUESTION_TEMPLATES)),
            )
            for _ in range(n)
        ]

    def passage(self, n_facts: int = 6, fillers: int | None = None) -> FactPassage:
        """Facts in random order mixed with filler sentences (~90 words for 6 facts)."""
        facts = self.facts(n_facts)
        entities = [f.entity for f in facts]
        sentences: list[Fact | str] = list(facts)
        for _ in range(n_facts + 2 if fillers is None else fillers):
            sentences.append(self.rng.choice(FILLERS).format(e=self.rng.choice(entities), n=self.name()))
        self.rng.shuffle(sentences)
        text, order, starts = "", [], []
        for sentence in sentences:
            text += " " if text else ""
            if isinstance(sentence, Fact):
                order.append(sentence)
                starts.append(len(text) + sentence.sentence.rindex(sentence.value))
                text += sentence.sentence
            else:
                text += sentence
        return FactPassage(text=text, facts=tuple(order), answer_starts=tuple(starts))

    def examples(self, n: int, n_facts: tuple[int, int] = (1, 8)) -> Iterator[tuple[str, str, int, str]]:
        """``(question, context, answer_start, answer_text)`` for training or evaluation."""
        for _ in range(n):
            passage = self.passage(self.rng.randint(*n_facts))
            fact = self.rng.choice(passage.facts)
            yield fact.question, passage.text, passage.answer_start(fact), fact.value


def cased_tokenizer(vocab_dir: Path = CASED_VOCAB) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(vocab_dir), do_lower_case=False)


def tiny_config(**overrides: object) -> BertConfig:
    from transformers import BertConfig

    settings: dict[str, object] = dict(
        vocab_size=28996,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=512,
        type_vocab_size=2,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def build_tiny_random(path: str | Path, seed: int = 0) -> Path:
    """A random-weight BertForQuestionAnswering (hidden 32, 2 layers) saved with its tokenizer."""
    import torch
    from transformers import BertForQuestionAnswering

    torch.manual_seed(seed)
    model = BertForQuestionAnswering(tiny_config())
    return _save(model, cased_tokenizer(), Path(path))


def _save(model: object, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))  # type: ignore[attr-defined]
    tokenizer.save_pretrained(str(path))
    return path


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[tuple[str, str, int, str]], max_len: int = 384
) -> dict[str, Any]:
    """Tokenise ``[CLS] q [SEP] context [SEP]`` and find each answer's token span."""
    import torch

    enc = tokenizer(
        [q for q, _, _, _ in examples], [c for _, c, _, _ in examples], truncation="only_second",
        max_length=max_len, padding=True, return_offsets_mapping=True, return_tensors="pt",
    )
    starts, ends = [], []
    for i, (_, _, a_start, a_text) in enumerate(examples):
        a_end = a_start + len(a_text)
        offsets = enc["offset_mapping"][i].tolist()
        inside = [j for j, s in enumerate(enc.sequence_ids(i)) if s == 1 and offsets[j][0] < a_end and offsets[j][1] > a_start]
        starts.append(inside[0])
        ends.append(inside[-1])
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "start_positions": torch.tensor(starts),
        "end_positions": torch.tensor(ends),
    }


# --- the trained fact reader ---------------------------------------------------------------------
#
# A transformer learns to *match* a question's name against the passage only after a long
# plateau (many minutes of CPU), far too slow for a test fixture. So the model starts from
# weights that hold the circuit a trained reader would find, written down by hand, and then its
# span head is trained on fresh random facts. The circuit, in a BERT with 3 layers and 4 heads:
#
#   layer 0  head 0: a passage token attends to question tokens with the same word piece
#                    ("match"); template words never match, [CLS] is the "no match" sink
#            head 1: the previous token is "is"       head 2: the next token is "."
#   layer 1  head 0: share of the name/attribute pieces 2-6 tokens back that match ("my
#                    sentence is about the asked entity"); FFN: start = prev-is AND that
#            head 1: a "." within the last 5 tokens (a later sentence's end is no answer's end)
#   layer 2  head 0: the start candidate 0-6 tokens back; FFN: end = next-is-"." AND its start
#
# The residual stream is split into subspaces: word identity, positions (sinusoids, each as
# (sin, cos, -sin, -cos) so every embedding has zero mean and LayerNorm's centring is a no-op),
# token type (a +/- pair) and one +/- pair per computed feature. Held-out facts in 6-fact
# passages: 1199/1200 exact (the miss: two entities sharing two word pieces).

_H, _HEADS, _HD = 208, 4, 52  # hidden size, heads, head size
_WORD, _MATCH_DIMS = 80, 40  # word-identity dims; the part of it that "match" compares
_POS0, _PAIRS = 80, 24  # position dims start here: 24 frequencies x 4
_TYPE = 176  # token type pair
_F = {"match": 178, "prev_is": 180, "next_dot": 182, "subj": 184, "end": 186, "period": 188,
      "name": 190, "start": 192, "endscore": 194}  # each a (+x, -x) pair


def train_tiny_qa(path: str | Path, *, seed: int = 0, steps: int = 20, batch_size: int = 16, lr: float = 1e-3) -> Path:
    """The fact reader (see above) with its output layer trained ``steps`` steps on fresh random
    facts, saved with its cased tokenizer. Deterministic for a seed; seconds on a CPU."""
    import torch

    torch.manual_seed(seed)
    tokenizer = cased_tokenizer()
    model = wired_fact_reader(tokenizer, seed)
    # Only the span head learns: the circuit's weights are exact, and Adam's equal-sized steps
    # on every one of them would blur attention patterns that hinge on a few large weights.
    optimiser = torch.optim.Adam(model.qa_outputs.parameters(), lr=lr)
    gen = FactGenerator(seed=seed + 1000)
    for _ in range(steps):
        batch = encode_examples(tokenizer, list(gen.examples(batch_size, n_facts=(2, 7))))
        with torch.no_grad():
            hidden = model.bert(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                attention_mask=batch["attention_mask"]).last_hidden_state
        outside = (batch["token_type_ids"] == 0) | (batch["attention_mask"] == 0)
        logits = model.qa_outputs(hidden).masked_fill(outside[..., None], -1e4)
        loss = (torch.nn.functional.cross_entropy(logits[..., 0], batch["start_positions"])
                + torch.nn.functional.cross_entropy(logits[..., 1], batch["end_positions"])) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return _save(model.eval(), tokenizer, Path(path))


def wired_fact_reader(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> Any:
    """A BertForQuestionAnswering whose weights hold the fact-reading circuit described above."""
    import torch
    from transformers import BertForQuestionAnswering

    config = tiny_config(hidden_size=_H, num_hidden_layers=3, num_attention_heads=_HEADS, intermediate_size=64,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForQuestionAnswering(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        words, match_basis = _embed(model, tokenizer, g)
        s = 1 / math.sqrt((_WORD - 1 + 2 * _PAIRS + 8) / _H)  # LayerNorm's scale for a typical token
        layers = model.bert.encoder.layer
        _wire_layer0(layers[0], tokenizer, words, match_basis, s)
        _window_head(layers[1].attention, 0, (-6, -2), key=("name", 3.0), value="match", out="subj", s=s)
        _window_head(layers[1].attention, 1, (-5, -1), key=None, value=None, out="period", s=s,
                     word=words[tokenizer.convert_tokens_to_ids(".")])
        _window_head(layers[2].attention, 0, (-6, 0), key=("prev_is", 5.0), value="start", out="end", s=s)
        for layer in layers:  # FFNs: silent but able to learn
            layer.intermediate.dense.weight[1:].normal_(0, 0.05, generator=g)
        _and_unit(layers[1], "prev_is", "subj", "start")
        _and_unit(layers[2], "next_dot", "end", "endscore")
        qa = model.qa_outputs.weight
        for row, weights in ((0, {"start": 3.0, "prev_is": 1.0, "subj": 1.0}),
                             (1, {"endscore": 3.0, "next_dot": 1.0, "end": 1.0, "period": -3.0})):
            for name, w in weights.items():
                qa[row, _F[name]] = w
    return model


def _template_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = set(tokenizer.all_special_ids)
    for text in (*FACT_TEMPLATES, *QUESTION_TEMPLATES, *FILLERS):
        ids.update(tokenizer(text.format(a="", e="", v="", n=""), add_special_tokens=False)["input_ids"])
    return sorted(ids)


def _embed(model: Any, tokenizer: PreTrainedTokenizerBase, g: Any) -> tuple[Any, Any]:
    """Word vectors (zero-mean; template words outside the match subspace), sinusoid positions,
    token types; returns the word vectors and the match subspace's basis."""
    import torch

    emb = model.bert.embeddings
    vocab = emb.word_embeddings.weight.shape[0]
    basis = torch.linalg.qr(torch.cat([torch.ones(_WORD, 1), torch.randn(_WORD, _WORD - 1, generator=g)], 1))[0]
    match, rest = basis[:, 1 : 1 + _MATCH_DIMS].T, basis[:, 1 + _MATCH_DIMS :].T  # zero-mean directions
    u = torch.randn(vocab, _MATCH_DIMS, generator=g)
    u = u / u.norm(dim=1, keepdim=True) * math.sqrt(_MATCH_DIMS)  # every name piece matches equally
    r = torch.randn(vocab, _WORD - 1 - _MATCH_DIMS, generator=g)
    template = torch.tensor(_template_ids(tokenizer))
    u[template] = 0
    r[template] *= math.sqrt((_WORD - 1) / (_WORD - 1 - _MATCH_DIMS))
    words = u @ match + r @ rest
    emb.word_embeddings.weight[:, :_WORD] = words
    names = torch.ones(vocab)
    names[template] = 0
    emb.word_embeddings.weight[:, _F["name"]] = names
    emb.word_embeddings.weight[:, _F["name"] + 1] = -names
    emb.position_embeddings.weight[:, _POS0 : _POS0 + 4 * _PAIRS] = _quads(emb.position_embeddings.weight.shape[0])
    for kind, sign in ((0, 1.0), (1, -1.0)):
        emb.token_type_embeddings.weight[kind, _TYPE] = 2.0 * sign
        emb.token_type_embeddings.weight[kind, _TYPE + 1] = -2.0 * sign
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.fill_(1.0)
    return words, match


def _omegas() -> Any:
    import torch

    return 2 * math.pi / torch.logspace(math.log10(2.2), math.log10(800), _PAIRS)


def _quads(positions: int) -> Any:
    import torch

    angle = torch.arange(positions)[:, None].float() * _omegas()
    out = torch.zeros(positions, 4 * _PAIRS)
    out[:, 0::4], out[:, 1::4] = torch.sin(angle), torch.cos(angle)
    out[:, 2::4], out[:, 3::4] = -out[:, 0::4], -out[:, 1::4]
    return out


def _position_kernel(inside: tuple[int, int]) -> tuple[Any, Any]:
    """Query/key maps (2*pairs x 4*pairs) with q_i . k_j ~ 1 when ``j - i`` lies in ``inside``,
    ~0 elsewhere: a least-squares fit of a sum of cosines and sines of the offset."""
    import torch

    om = _omegas()
    d = torch.arange(-400, 401).float()
    basis = torch.stack([f(w * d) for w in om for f in (torch.cos, torch.sin)], 1)
    target = ((d >= inside[0]) & (d <= inside[1])).float()
    weight = torch.where(target > 0, 20.0, 1.0)[:, None]
    sol = torch.linalg.lstsq(basis * weight, target[:, None] * weight).solution[:, 0]
    sol = sol / (basis @ sol).max()
    q, k = torch.zeros(2 * _PAIRS, 4 * _PAIRS), torch.zeros(2 * _PAIRS, 4 * _PAIRS)
    for n in range(_PAIRS):
        c, sn = sol[2 * n], sol[2 * n + 1]
        q[2 * n, 4 * n], q[2 * n, 4 * n + 1] = c, sn  # q . (sin_j, cos_j) = c cos(w d) + sn sin(w d)
        q[2 * n + 1, 4 * n], q[2 * n + 1, 4 * n + 1] = -sn, c
        k[2 * n, 4 * n], k[2 * n + 1, 4 * n + 1] = 1.0, 1.0
    return q, k


def _write(dense: Any, name: str, column: int, gain: float) -> None:
    dense.weight[_F[name], column] = gain
    dense.weight[_F[name] + 1, column] = -gain


def _read(row: Any, name: str, gain: float) -> None:
    row[_F[name]] = gain / 2
    row[_F[name] + 1] = -gain / 2


def _wire_layer0(layer: Any, tokenizer: PreTrainedTokenizerBase, words: Any, basis: Any, s: float) -> None:
    att = layer.attention
    q, k, v, o = att.self.query, att.self.key, att.self.value, att.output.dense
    root = math.sqrt(_HD)
    positions = slice(_POS0, _POS0 + 4 * _PAIRS)
    # head 0: same word piece in the question (+12 logits), question side preferred (+-8),
    # [CLS] as the "nothing matched" sink (+6); its value says "question token, not [CLS]".
    alpha = math.sqrt(12 * root / (_MATCH_DIMS * s * s))
    q.weight[:_MATCH_DIMS, :_WORD] = alpha * basis
    k.weight[:_MATCH_DIMS, :_WORD] = alpha * basis
    kappa = math.sqrt(8 * root) / (4 * s)
    q.weight[_MATCH_DIMS, _TYPE], q.weight[_MATCH_DIMS, _TYPE + 1] = -kappa, kappa
    k.weight[_MATCH_DIMS, _TYPE], k.weight[_MATCH_DIMS, _TYPE + 1] = kappa, -kappa
    cls = words[tokenizer.cls_token_id]
    q.bias[_MATCH_DIMS + 1] = 1.0
    k.weight[_MATCH_DIMS + 1, :_WORD] = 6 * root / (s * cls.norm()) * cls / cls.norm()
    v.weight[0, _TYPE], v.weight[0, _TYPE + 1] = 0.25, -0.25
    v.weight[0, :_WORD] = -cls / cls.norm() ** 2
    _write(o, "match", 0, 3.0 / s)
    # heads 1, 2: the neighbouring token's word, compared with "is" / "."
    for head, offset, token, name in ((1, -1, "is", "prev_is"), (2, 1, ".", "next_dot")):
        pq, pk = _position_kernel((offset, offset))
        rows = slice(head * _HD, head * _HD + 2 * _PAIRS)
        q.weight[rows, positions] = 24.0 * root / (s * s) * pq
        k.weight[rows, positions] = pk
        word = words[tokenizer.convert_tokens_to_ids(token)]
        v.weight[head * _HD, :_WORD] = word / word.norm() ** 2
        _write(o, name, head * _HD, 1.0 / s)


def _window_head(att: Any, head: int, inside: tuple[int, int], *, key: tuple[str, float] | None,
                 value: str | None, out: str, s: float, word: Any = None) -> None:
    """A head that attends to the tokens at offsets ``inside`` of itself, preferring those whose
    ``key`` feature is high (or that are ``word``), and writes the mean of their ``value``
    feature (or of their being ``word``) into feature ``out``."""
    q, k, v, o = att.self.query, att.self.key, att.self.value, att.output.dense
    root, first, last = math.sqrt(_HD), head * _HD, head * _HD + _HD - 1
    pq, pk = _position_kernel(inside)
    q.weight[first : first + 2 * _PAIRS, _POS0 : _POS0 + 4 * _PAIRS] = 16.0 * root / (s * s) * pq
    k.weight[first : first + 2 * _PAIRS, _POS0 : _POS0 + 4 * _PAIRS] = pk
    q.bias[last] = 1.0
    if word is not None:
        k.weight[last, :_WORD] = 6 * root / s * word / word.norm() ** 2
        v.weight[first, :_WORD] = word / word.norm() ** 2
    if key is not None:
        name, gain = key
        k.weight[last, _F[name]], k.weight[last, _F[name] + 1] = gain * root / s, -gain * root / s
    if value is not None:
        _read(v.weight[first], value, 1.0)
    _write(o, out, first, 1.0 / s)


def _and_unit(layer: Any, a: str, b: str, out: str) -> None:
    """FFN unit 0 = GELU(2 a + b - 2): high only when both features are."""
    w1, w2 = layer.intermediate.dense, layer.output.dense
    w1.weight[0].zero_()
    _read(w1.weight[0], a, 2.0)
    _read(w1.weight[0], b, 1.0)
    w1.bias[0] = -2.0
    _write(w2, out, 0, 1.0)
