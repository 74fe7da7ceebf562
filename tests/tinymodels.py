"""Tiny real BERT QA models for tests, built offline from a config and the shared cased vocab.

- ``build_tiny_random(path)``: random weights; exercises loading, windowing and decoding.
- ``train_tiny_qa(path)``: trained here in seconds on templated facts ("The code of Zorbia is
  Quelm." / "What is the code of Zorbia?" -> "Quelm"), so end-to-end tests can check that the
  right answer comes back from the right file. Facts use made-up names drawn at random, so the
  model must learn to pick the value of the asked entity and attribute, not memorise names.

Both are saved with ``save_pretrained`` together with their (cased) tokenizer, so
``Reader(model=str(path))`` loads them the way it loads a real model.

Writing documents with facts for a test::

    gen = FactGenerator(seed=7)
    passage = gen.passage(n_facts=6)          # ~100 words: facts plus filler sentences
    fact = passage.facts[0]
    fact.question  # "What is the code of Zorbia?"
    fact.value     # "Quelm"; passage.text[passage.answer_start(fact):...] == fact.value
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
# Sentences that name entities or value-like words but state no fact: the model must not answer
# with the first capitalised word near the asked entity.
FILLERS = (
    "Nothing else is recorded about {e}.",
    "Travellers often visit {e} in the spring.",
    "{e} lies beyond the grey hills.",
    "Many stories have been written about {e} and {n}.",
    "The people of {e} trade with {n}.",
    "Some say {n} was once part of {e}.",
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
    # (sentence start, sentence end, subject start, subject end) for each sentence; subject -1
    # when the sentence names no entity. Training supervises attention with it.
    layout: tuple[tuple[int, int, int, int], ...] = ()

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
        """Facts in random order mixed with filler sentences (~100 words for 6 facts)."""
        facts = self.facts(n_facts)
        entities = sorted({f.entity for f in facts})
        sentences: list[Fact | str] = list(facts)
        for _ in range(n_facts + 2 if fillers is None else fillers):
            template = self.rng.choice(FILLERS)
            sentences.append(template.format(e=self.rng.choice(entities), n=self.name()))
        self.rng.shuffle(sentences)
        text, starts, order, layout = "", {}, [], []
        for s in sentences:
            if text:
                text += " "
            sentence, subject = (s.sentence, s.entity) if isinstance(s, Fact) else (s, _subject(s, entities))
            if isinstance(s, Fact):
                starts[s] = len(text) + sentence.rindex(s.value)
                order.append(s)
            at = sentence.find(subject) if subject else -1
            layout.append((len(text), len(text) + len(sentence), -1 if at < 0 else len(text) + at,
                           -1 if at < 0 else len(text) + at + len(subject)))
            text += sentence
        return FactPassage(
            text=text, facts=tuple(order), answer_starts=tuple(starts[f] for f in order), layout=tuple(layout)
        )

    def examples(self, n: int, n_facts: tuple[int, int] = (1, 8)) -> Iterator[tuple[str, str, int, str]]:
        """``(question, context, answer_start, answer_text)`` for training or evaluation."""
        for _ in range(n):
            passage = self.passage(self.rng.randint(*n_facts))
            fact = self.rng.choice(passage.facts)
            yield fact.question, passage.text, passage.answer_start(fact), fact.value


def _subject(sentence: str, entities: Sequence[str]) -> str:
    named = [e for e in entities if e in sentence]
    return min(named, key=sentence.index) if named else ""


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
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[tuple[str, str, int, str]],
    max_len: int = 384,
) -> dict[str, object]:
    """Tokenise ``[CLS] q [SEP] context [SEP]`` and find each answer's token span."""
    import torch

    questions = [q for q, _, _, _ in examples]
    contexts = [c for _, c, _, _ in examples]
    enc = tokenizer(
        questions, contexts, truncation="only_second", max_length=max_len, padding=True,
        return_offsets_mapping=True, return_tensors="pt",
    )
    starts, ends = [], []
    for i, (_, _, a_start, a_text) in enumerate(examples):
        a_end = a_start + len(a_text)
        seq = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i].tolist()
        tok = [j for j, s in enumerate(seq) if s == 1 and offsets[j][0] < a_end and offsets[j][1] > a_start]
        starts.append(tok[0])
        ends.append(tok[-1])
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "start_positions": torch.tensor(starts),
        "end_positions": torch.tensor(ends),
    }


def train_tiny_qa(
    path: str | Path,
    *,
    seed: int = 0,
    steps: int = 600,
    batch_size: int = 32,
    lr: float = 2e-3,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
) -> Path:
    """Train a tiny QA model on templated facts (seconds on CPU) and save it with its tokenizer."""
    import torch
    from transformers import BertForQuestionAnswering

    torch.manual_seed(seed)
    tokenizer = cased_tokenizer()
    model = BertForQuestionAnswering(
        tiny_config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                    intermediate_size=hidden * 2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )
    model.train()
    gen = FactGenerator(seed=seed + 1000)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    for _ in range(steps):
        batch = encode_examples(tokenizer, list(gen.examples(batch_size)))
        loss = model(**batch).loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
    model.eval()
    return _save(model, tokenizer, Path(path))
