"""LAReQA-format data (XQuAD-R, MLQA-R): candidates are sentences, answers pick one per language."""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class Candidate:
    id: str  # "{lang}:{article}:{paragraph}:{sentence}"
    lang: str
    text: str
    context: str  # the whole paragraph (LAReQA encodes sentence + paragraph)


@dataclass(frozen=True)
class Question:
    id: str  # shared by the translations of one question
    lang: str
    text: str


@dataclass
class LareqaData:
    candidates: list[Candidate] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    #: question id -> language -> id of the candidate holding the answer in that language
    relevant: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))

    @property
    def languages(self) -> list[str]:
        return sorted({c.lang for c in self.candidates} | {q.lang for q in self.questions})

    @property
    def questions_by_id(self) -> dict[str, dict[str, Question]]:
        table: dict[str, dict[str, Question]] = defaultdict(dict)
        for q in self.questions:
            table[q.id][q.lang] = q
        return table


def answer_sentence(breaks: list[list[int]], answer_start: int) -> int:
    """Index of the sentence whose [start, end) span holds the answer's first character.

    Precisely: the last sentence starting at or before `answer_start`, which is the same when
    the breaks tile the paragraph (they do in XQuAD-R: no answer starts between sentences) and
    picks the preceding sentence for an answer starting in a gap (approximate offsets).
    """
    starts = [start for start, _ in breaks]
    return max(0, bisect.bisect_right(starts, answer_start) - 1)


def load_lareqa(data_dir: str | Path, langs: list[str] | None = None) -> LareqaData:
    """Read `{lang}.json` files (SQuAD format plus `sentences` and `sentence_breaks`)."""
    data_dir = Path(data_dir)
    files = sorted(data_dir.glob("*.json"))
    if langs:
        files = [f for f in files if f.stem in langs]
    if not files:
        raise InputError(f"no LAReQA `{{lang}}.json` files in {data_dir}")
    data = LareqaData()
    for path in files:
        _load_language(path.stem, json.loads(path.read_text()), data)
    return data


def _load_language(lang: str, squad: dict, data: LareqaData) -> None:
    for a, article in enumerate(squad["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            if "sentences" not in paragraph:
                raise InputError(
                    f"{lang}.json paragraph {a}/{p} has no `sentences`: not LAReQA format"
                )
            # one candidate per (language, paragraph, sentence index), duplicates included;
            # blank sentences cannot be embedded and are left out
            ids = [f"{lang}:{a}:{p}:{s}" for s in range(len(paragraph["sentences"]))]
            for cid, sentence in zip(ids, paragraph["sentences"], strict=True):
                if sentence.strip():
                    data.candidates.append(Candidate(cid, lang, sentence, paragraph["context"]))
            for qa in paragraph.get("qas", []):
                if not qa.get("answers") or not qa["question"].strip():
                    continue
                index = answer_sentence(
                    paragraph["sentence_breaks"], qa["answers"][0]["answer_start"]
                )
                if not paragraph["sentences"][index].strip():
                    continue
                data.questions.append(Question(qa["id"], lang, qa["question"]))
                data.relevant[qa["id"]][lang] = ids[index]


def first_questions(data: LareqaData, n: int) -> LareqaData:
    """The first `n` questions of each language, in file order (quick runs); every candidate
    and every language's answers are kept, so Cross and Multi stay well defined."""
    seen: dict[str, int] = defaultdict(int)
    questions = []
    for q in data.questions:
        if seen[q.lang] < n:
            seen[q.lang] += 1
            questions.append(q)
    return LareqaData(data.candidates, questions, data.relevant)
