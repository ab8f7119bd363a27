"""Parallel question-passage data -> an example table (a Hugging Face `datasets.Dataset`).

Every row: ``pid`` (parallel id, shared by the translations of one example), ``lang``,
``question``, ``passage``, ``context`` (the paragraph around a sentence passage, else ""),
and ``group`` (int): the connected component of parallel ids that share a passage in some
language (the questions of one paragraph). The sampler keeps one row per group in a batch,
and the validation split holds out whole groups, so no translation (and no paragraph) of a
validation example is trained on.

Sources:
- a directory of SQuAD v1.1 files named ``{lang}.json`` aligned by question id;
- JSONL files with rows ``{"id", "lang", "question", "passage"}`` (optional ``"context"``).

Passage unit: ``paragraph`` (the SQuAD context) or ``sentence`` (LAReQA style: the sentence
holding the answer, with its paragraph kept as ``context``). Sentences are split by a simple
rule (see `sentence_spans`); translated ``answer_start`` values may be approximate, so the
answer text is looked up nearest to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNITS = ("paragraph", "sentence")
COLUMNS = ("pid", "lang", "question", "passage", "context")

# --- sentences ----------------------------------------------------------------------------

_END = re.compile(r"[.!?…]+[\"'”’»)\]]*\s+|[。！？]+[\"”’」』)]*\s*|\s*\n+\s*")
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "prof"}
_INITIALS = re.compile(r"^\(?(?:[A-Z]\.)*[A-Z]$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, by a simple documented rule.

    A sentence ends at a run of ``. ! ? …`` (plus closing quotes or brackets) followed by
    whitespace, unless the next character is lowercase, or the word before a period is a capital
    initial or initialism (``J.``, ``U.S.``) or a common abbreviation (Mr, Dr, St, etc.).
    CJK ``。！？`` end a sentence with or without whitespace; a newline always does. Spans
    cover the text without the whitespace between sentences.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end()
        if end >= len(text):
            break
        mark = m.group()
        if mark[0] in ".!?…":
            if text[end].islower():
                continue
            if mark[0] == ".":
                before = text[start : m.start()].split()
                prev = before[-1] if before else ""
                if _INITIALS.match(prev) or prev.lower().lstrip("(") in _ABBREV:
                    continue
        stop = m.start() + len(mark.rstrip())
        if stop > start:
            spans.append((start, stop))
        start = end
    stop = len(text.rstrip())
    if stop > start:
        spans.append((start, stop))
    return spans or [(0, len(text))]


def answer_offset(context: str, text: str, start: int) -> int:
    """Where the answer starts: `start` if it matches, else the occurrence nearest to it."""
    if text and context[start : start + len(text)] == text:
        return start
    hits = [m.start() for m in re.finditer(re.escape(text), context)] if text else []
    if hits:
        return min(hits, key=lambda h: abs(h - start))
    return min(max(start, 0), max(len(context) - 1, 0))


def answer_sentence(context: str, text: str, start: int) -> tuple[int, str]:
    """(index, text) of the sentence holding the answer; spans the answer if it crosses one."""
    spans = sentence_spans(context)
    begin = answer_offset(context, text, start)
    end = begin + max(len(text), 1) - 1
    first = next((i for i, (_, e) in enumerate(spans) if begin < e), len(spans) - 1)
    last = next((i for i, (_, e) in enumerate(spans) if end < e), len(spans) - 1)
    last = max(first, last)
    return first, context[spans[first][0] : spans[last][1]]


# --- loaders ------------------------------------------------------------------------------


def _signature(files: list[Path], *extra) -> str:
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256(json.dumps([parts, extra]).encode()).hexdigest()[:32]


def _squad_rows(files: list[str], unit: str):
    for file in files:
        lang = Path(file).stem
        data = json.loads(Path(file).read_text(encoding="utf-8"))["data"]
        for a, article in enumerate(data):
            for p, para in enumerate(article["paragraphs"]):
                context = para["context"]
                for qa in para["qas"]:
                    key = f"{lang}|{a}|{p}"
                    passage, ctx = context, ""
                    if unit == "sentence":
                        ans = (qa.get("answers") or [{"text": "", "answer_start": 0}])[0]
                        s, passage = answer_sentence(context, ans["text"], ans["answer_start"])
                        key, ctx = f"{key}|{s}", context
                    yield {
                        "pid": str(qa["id"]),
                        "lang": lang,
                        "question": qa["question"].strip(),
                        "passage": passage,
                        "context": ctx,
                        "unit_key": key,
                    }


def load_squad_dir(path: str | Path, unit: str = "paragraph", langs=None):
    """Rows of every ``{lang}.json`` SQuAD file in `path` (before grouping)."""
    import datasets

    if unit not in UNITS:
        raise ValueError(f"passage unit must be one of {UNITS}")
    files = sorted(Path(path).glob("*.json"))
    if langs:
        files = [f for f in files if f.stem in set(langs)]
    if not files:
        raise FileNotFoundError(f"no {{lang}}.json SQuAD files in {path}")
    return datasets.Dataset.from_generator(
        _squad_rows,
        gen_kwargs={"files": [str(f) for f in files], "unit": unit},
        fingerprint=_signature(files, "squad", unit),
    )


def load_jsonl(paths, langs=None):
    """Rows of JSONL files ``{id, lang, question, passage[, context]}`` (before grouping).

    Read here rather than by `datasets`' JSON builder, so that files with and without the
    optional ``context`` mix, and a bad row is named by file and line."""
    import datasets

    files = _jsonl_files(paths)
    rows = list(_jsonl_rows([str(f) for f in files], set(langs) if langs else None))
    columns = (*COLUMNS, "unit_key")
    return datasets.Dataset.from_dict(
        {c: [r[c] for r in rows] for c in columns},
        features=datasets.Features({c: datasets.Value("string") for c in columns}),
    )


def _jsonl_rows(files: list[str], langs: set | None):
    for file in files:
        with open(file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{file}:{n}: not JSON ({exc.msg})") from None
                missing = {"id", "lang", "question", "passage"} - set(row)
                if missing:
                    raise ValueError(f"{file}:{n}: the row lacks the fields {sorted(missing)}")
                if langs is not None and row["lang"] not in langs:
                    continue
                yield {
                    "pid": str(row["id"]),
                    "lang": str(row["lang"]),
                    "question": str(row["question"]),
                    "passage": str(row["passage"]),
                    "context": str(row.get("context") or ""),
                    "unit_key": f"{row['lang']}|{row['passage']}",
                }


def _jsonl_files(paths) -> list[Path]:
    paths = [paths] if isinstance(paths, str | Path) else paths
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no JSONL files in {paths}")
    return files


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        if any(p.glob("*.jsonl")):
            return "jsonl"
        if any(p.glob("*.json")):
            return "squad"
    elif p.suffix in (".jsonl", ".ndjson") or p.name.endswith(".jsonl.gz"):
        return "jsonl"
    raise ValueError(
        f"cannot tell the data format of {path} (want a dir of {{lang}}.json or JSONL)"
    )


def group_ids(pids: list, unit_keys: list) -> np.ndarray:
    """Connected components of the bipartite graph parallel id <-> passage key (union-find).

    The group of a row is the smallest row index in its component, so it is deterministic.
    """
    pid_code = {p: i for i, p in enumerate(dict.fromkeys(pids))}
    parent = list(range(len(pid_code)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_pid: dict = {}
    for p, k in zip(pids, unit_keys, strict=True):
        a = pid_code[p]
        b = first_pid.setdefault(k, a)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comp = np.array([find(pid_code[p]) for p in pids], dtype=np.int64)
    _, first_row = np.unique(comp, return_index=True)
    label = np.empty(comp.max() + 1 if len(comp) else 0, dtype=np.int64)
    label[np.unique(comp)] = first_row
    return label[comp]


@dataclass
class ExampleTable:
    """An example table and numpy views of the columns the sampler needs."""

    ds: object  # datasets.Dataset with COLUMNS + "group"

    def __post_init__(self):
        self.pids = np.asarray(list(self.ds["pid"]), dtype=object)
        self.langs = np.asarray(list(self.ds["lang"]), dtype=object)
        self.groups = np.asarray(list(self.ds["group"]), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ds)

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.langs.tolist()))

    def rows(self, idx) -> dict[str, list]:
        return self.ds[[int(i) for i in idx]]

    def select(self, idx) -> ExampleTable:
        return ExampleTable(self.ds.select(np.asarray(idx, dtype=np.int64)))

    def stats(self) -> dict:
        ids_per_pid = {}
        for p in self.pids:
            ids_per_pid[p] = ids_per_pid.get(p, 0) + 1
        return {
            "rows": len(self),
            "ids": len(ids_per_pid),
            "groups": len(np.unique(self.groups)),
            "ids_in_2plus_langs": int(sum(v >= 2 for v in ids_per_pid.values())),
            "rows_per_lang": {la: int((self.langs == la).sum()) for la in self.languages},
        }

    def split(self, val_fraction: float, seed: int = 0) -> tuple[ExampleTable, ExampleTable]:
        """(train, validation): a seeded `val_fraction` of the groups is held out whole."""
        groups = np.unique(self.groups)
        n_val = int(round(len(groups) * val_fraction))
        if val_fraction > 0:
            n_val = min(max(n_val, 1), len(groups) - 1)
        held = np.random.default_rng([seed, 7]).permutation(groups)[:n_val]
        is_val = np.isin(self.groups, held)
        return self.select(np.flatnonzero(~is_val)), self.select(np.flatnonzero(is_val))


def load_examples(
    path: str | Path, fmt: str = "auto", unit: str = "paragraph", langs=None
) -> ExampleTable:
    """Load parallel data (SQuAD dir or JSONL) into an `ExampleTable` with groups."""
    if isinstance(langs, str):
        langs = [x for x in langs.split(",") if x]
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "squad":
        ds = load_squad_dir(path, unit=unit, langs=langs)
    elif fmt == "jsonl":
        if unit != "paragraph":
            raise ValueError("JSONL rows carry their passage already: use passage unit 'paragraph'")
        ds = load_jsonl(path, langs=langs)
    else:
        raise ValueError(f"unknown data format {fmt!r} (auto, squad, jsonl)")
    if len(ds) == 0:
        raise ValueError(f"no examples in {path}")
    groups = group_ids(list(ds["pid"]), list(ds["unit_key"]))
    ds = ds.remove_columns("unit_key").add_column("group", groups.tolist())
    return ExampleTable(ds.select_columns([*COLUMNS, "group"]))
