"""What an evaluation found: figures per backend, the ES-vs-exact gap, timings and notes.

`EvalResult` is written as results.json (`to_json`, NaN as null) and results.md
(`to_markdown`); `xlir eval --json` prints the same dict.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

COLUMNS = ["mono", "cross", "multi", "r1_mono", "r1_cross", "r10_multi", "rank_distance"]
HEADERS = ["Mono", "Cross", "Multi", "R@1 mono", "R@1 cross", "R@10 multi", "rank dist"]


@dataclass
class BackendResult:
    """Macro-averaged figures of one backend, per query language and overall."""

    map_metric: str  # the ranx measure behind Mono/Cross/Multi, e.g. "map" or "map@100"
    per_lang: dict[str, dict[str, float]]
    mean: dict[str, float]
    cross_map: dict[str, dict[str, float]]  # query lang -> candidate lang -> mAP (diag: Mono)
    queries: dict[str, int]  # evaluated (query, setting) pairs: mono, cross, multi
    seconds: float = 0.0


@dataclass
class EvalResult:
    model: str
    data: str
    candidates: int
    queries: int
    languages: list[str]
    settings: dict[str, Any]
    backends: dict[str, BackendResult] = field(default_factory=dict)
    gap: dict[str, float] = field(default_factory=dict)  # ES vs exact
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# {self.model} on {self.data}", ""]
        lines.append(
            f"{self.queries} queries, {self.candidates} candidates, "
            f"{len(self.languages)} languages; settings: "
            + ", ".join(f"{k}={v}" for k, v in self.settings.items())
        )
        for name, res in self.backends.items():
            lines += ["", f"## {name}: mAP = ranx `{res.map_metric}` ({res.seconds:.0f} s)", ""]
            lines.append("| query lang | " + " | ".join(HEADERS) + " |")
            lines.append("|---" * (len(HEADERS) + 1) + "|")
            for lang, row in [*res.per_lang.items(), ("**mean**", res.mean)]:
                cells = [_fmt(row.get(c), c) for c in COLUMNS]
                lines.append(f"| {lang} | " + " | ".join(cells) + " |")
        if self.gap:
            lines += ["", f"## {self.settings.get('engine', 'Elasticsearch')} vs exact", ""]
            lines.append("| measure | value |")
            lines.append("|---|---|")
            lines += [
                f"| {k} | {v:+.4f} |" if "delta" in k else f"| {k} | {v:.4f} |"
                for k, v in self.gap.items()
            ]
        if self.timings:
            lines += [
                "",
                "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items()),
            ]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if column == "rank_distance" else f"{value:.3f}"


def _finite(obj: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
