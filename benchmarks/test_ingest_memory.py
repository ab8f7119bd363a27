"""Groups 5-6: ingest throughput (JSONL to searchable) and peak RSS of a serving process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.ingest import ingest

SERVE = """
import resource, sys
{load}
texts = ["passage: " + t for t in {texts!r}]
encode(texts)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
LOADERS = {
    "xlir-int8": "from xlir_plugin.encoder import OnnxEncoder\n"
    "e = OnnxEncoder({dir!r}, threads=2)\nencode = lambda t: e.encode(t, 'raw')",
    "torch-fp32": "import torch\nfrom transformers import AutoModel, AutoTokenizer\ntorch.set_grad_enabled(False)\n"
    "tok = AutoTokenizer.from_pretrained({dir!r}); m = AutoModel.from_pretrained({dir!r}).eval()\n"
    "encode = lambda t: m(**tok(t, padding=True, return_tensors='pt')).last_hidden_state.mean(1)",
}


def test_ingest_throughput(benchmark, es, model_dirs, xquad, quick, tmp_path):  # noqa: F811
    benchmark.group = "5. ingest: JSONL -> searchable (encode + bulk + refresh)"
    n = 100 if quick else 1000
    path = tmp_path / "docs.jsonl"
    docs = [{"id": c.id, "lang": c.lang, "text": c.text} for c in xquad.candidates[:n]]
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n")
    encoder = OnnxEncoder(model_dirs["int8"], threads=2)
    names = []

    def run():
        names.append(f"xlir-bench-ingest-{uuid.uuid4().hex[:6]}")
        return ingest(es, names[-1], encoder, path, progress=False)

    report = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(
        {
            "docs": n,
            "docs_per_s": round(n / benchmark.stats.stats.median, 1) if benchmark.stats else None,
        }
    )
    assert report.indexed == n and es.count(index=names[-1])["count"] == n
    for name in names:
        es.indices.delete(index=name)


@pytest.mark.parametrize("engine", list(LOADERS))
def test_serving_peak_rss(benchmark, model_dirs, passages, engine):
    benchmark.group = "6. peak RSS of a serving process (encode 64 passages)"
    model = model_dirs["int8" if engine == "xlir-int8" else "hf"]
    code = SERVE.format(load=LOADERS[engine].format(dir=str(model)), texts=passages[:64])

    def run() -> int:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return int(out.stdout.split()[-1])

    kib = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["peak_rss_mb"] = round(kib / 1024, 1)
    assert kib > 0
