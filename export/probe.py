"""The fixed multilingual probe set of the parity check.

Default: 100 questions and 100 sentences from XQuAD-R, spread over its 11 languages. Question
i is XQuAD-R question number i * step (in file order) in language LANGS[i % 11]; sentence i is
the sentence answering it, in language LANGS[(i + 5) % 11], so the set also holds a small
cross-lingual retrieval task (top-1 agreement between torch and ONNX is measured on it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from export.errors import ExportInputError

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


@dataclass
class Probe:
    name: str
    queries: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)


def xquad_r_dir() -> Path:
    from xlir_plugin.paths import data_dir

    return data_dir() / "xquad-r"


def _answers_by_id(path: Path) -> dict[str, tuple[str, str]]:
    """question id -> (question, sentence holding the answer), in file order."""
    out: dict[str, tuple[str, str]] = {}
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                start = qa["answers"][0]["answer_start"]
                sentence = next(
                    (
                        s
                        for s, (a, b) in zip(
                            para["sentences"], para["sentence_breaks"], strict=False
                        )
                        if a <= start < b
                    ),
                    para["sentences"][-1],
                )
                out[qa["id"]] = (qa["question"], sentence)
    return out


def xquad_r_probe(n: int = 100, root: Path | None = None) -> Probe:
    root = Path(root) if root else xquad_r_dir()
    missing = [lang for lang in LANGS if not (root / f"{lang}.json").is_file()]
    if missing:
        raise ExportInputError(
            f"XQuAD-R not found in {root} (missing {', '.join(missing)}.json); "
            "set XLIR_DATA or pass --probe FILE"
        )
    by_lang = {lang: _answers_by_id(root / f"{lang}.json") for lang in LANGS}
    ids = [qid for qid in by_lang["en"] if all(qid in by_lang[lang] for lang in LANGS)]
    step = max(1, len(ids) // n)
    probe = Probe(name=f"xquad-r:{n}x2")
    for i, qid in enumerate(ids[::step][:n]):
        probe.queries.append(by_lang[LANGS[i % len(LANGS)]][qid][0])
        probe.passages.append(by_lang[LANGS[(i + 5) % len(LANGS)]][qid][1])
    return probe


def file_probe(path: str | Path) -> Probe:
    """One text per line (all passages), or JSONL objects {"text": ..., "kind": "query" |
    "passage"} (also {"query": ...} / {"passage": ...})."""
    path = Path(path)
    if not path.is_file():
        raise ExportInputError(f"probe file not found: {path}")
    probe = Probe(name=f"file:{path.name}")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ExportInputError(f"{path}:{number}: invalid JSON ({e.msg})") from e
            if "query" in obj or "passage" in obj:
                kind = "query" if "query" in obj else "passage"
                text = obj[kind]
            else:
                kind, text = obj.get("kind", "passage"), obj.get("text")
            if not isinstance(text, str) or kind not in ("query", "passage"):
                raise ExportInputError(f"{path}:{number}: expected a text and a kind")
            (probe.queries if kind == "query" else probe.passages).append(text)
        else:
            probe.passages.append(line)
    if len(probe.queries) + len(probe.passages) < 2:
        raise ExportInputError(f"probe file {path} holds fewer than 2 texts")
    return probe


def load_probe(path: str | Path | None = None) -> Probe:
    return file_probe(path) if path else xquad_r_probe()
