"""`results/long-documents.md` from the JSON `benchmarks/long_documents.py` writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def markdown(info: dict) -> str:
    lines = [
        "# Long documents: truncation vs passages (issue #25)",
        "",
        "Written by `python -m benchmarks.long_documents` (this table: "
        "`benchmarks/long_documents_report.py`). The default model (multilingual-e5-small int8, "
        "max length 512 tokens), one local Elasticsearch node.",
        "",
        f"Task: XQuAD-R as documents. Each article of each language (5 paragraphs, ~900 tokens "
        f"in English) is one document: {info['docs']} documents (48 articles x 11 languages); "
        f"the {info['queries']} questions are the queries; relevant: the question's article in "
        "each language. Mono/Cross/Multi mAP, R@1 and rank distance as `xlir eval` computes them "
        "(`evaluation.scoring`), with documents as candidates; a chunked document scores as its "
        "best passage (what the nested kNN search does). XQuAD-R is evaluation-only: every row "
        "below is report-only, nothing was chosen on it.",
        "",
        "| configuration | vectors | Mono | Cross | Multi | R@1 mono | R@1 cross | R@10 multi "
        "| rank dist | ingest s | of which encoding s | index MB | engine top-10 = exact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in info["rows"]:
        m, c = row["mean"], row["cost"]
        lines.append(
            f"| {row['label']} | {c['passages']} | {m['mono']:.3f} | {m['cross']:.3f} | "
            f"{m['multi']:.3f} | {m['r1_mono']:.3f} | {m['r1_cross']:.3f} | "
            f"{m['r10_multi']:.3f} | {m['rank_distance']:.1f} | {c['seconds']:.0f} | "
            f"{c['encode_seconds']:.0f} | {c['bytes'] / 2**20:.1f} | {row['engine_top10']:.3f} |"
        )
    truncated = info["rows"][0]["cost"]["truncated"]
    lines += [
        "",
        f"Truncation cut {truncated} of the {info['docs']} documents at 512 tokens. Ingest: the "
        "whole client path (`ingest`: chunking, encoding, bulk, refresh) into an empty index; "
        "index MB: store size after a force merge to one segment (int8_hnsw, m 32, with the "
        "float vectors kept for rescoring). Engine top-10 = exact: the share of the exact "
        "multilingual top 10 that the engine's nested kNN returns (40 queries per language). "
        f"Query encoding ({info['queries']} questions, once for all rows): "
        f"{info['query_seconds']:.0f} s. Whole run: {info['seconds'] / 60:.1f} min on "
        f"{info['cores']} cores; load before: `{info['load']['before']}`; after: "
        f"`{info['load']['after']}`.",
    ]
    other = info.get("splitter")
    if other:
        m = other["mean"]
        lines += [
            "",
            "## Another splitter: semantic-text-splitter",
            "",
            "The same documents cut by `semantic-text-splitter` 0.33 (`TextSplitter."
            "from_huggingface_tokenizer` with the model's tokenizer), encoded and ranked exactly "
            "with numpy (not indexed; its encoding time only). XLIR keeps its own ~40-line "
            "splitter because the in-engine Java processor must cut the very same passages and "
            "that library has no Java port.",
            "",
            "| splitter | passages | Mono | Cross | Multi | R@1 mono | R@1 cross | R@10 multi "
            "| rank dist | encoding s |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {other['label']} | {other['passages']} | {m['mono']:.3f} | {m['cross']:.3f} | "
            f"{m['multi']:.3f} | {m['r1_mono']:.3f} | {m['r1_cross']:.3f} | "
            f"{m['r10_multi']:.3f} | {m['rank_distance']:.1f} | {other['encode_seconds']:.0f} |",
            "",
            f"Load after this run: `{other['load']}`.",
        ]
    choice = info.get("choice")
    if choice:
        best, about = choice
        lines += [
            "",
            "## The default passage length, chosen on training data",
            "",
            f"squad-dev-parallel (en, es; SQuAD dev paragraphs without any XQuAD paragraph): "
            f"documents of 5 consecutive paragraphs, the first 3 such per article and language "
            f"({about['docs']} documents), {about['queries']} questions whose document exists in "
            "both languages. Caveat: these are the same 48 Wikipedia articles as XQuAD-R's "
            "(other paragraphs, other questions).",
            "",
            "| max tokens | Mono | Cross | Multi | rank dist |",
            "|---|---|---|---|---|",
        ]
        for n, m in about["by_n"].items():
            lines.append(
                f"| {n} | {m['mono']:.3f} | {m['cross']:.3f} | {m['multi']:.3f} | "
                f"{m['rank_distance']:.1f} |"
            )
        lines += ["", f"Chosen: {best} (best mean of Mono, Cross and Multi)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "results/long-documents.json")
    print(markdown(json.loads(source.read_text())), end="")
