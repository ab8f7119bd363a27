"""The client path on a real OpenSearch node: the knn_vector mapping and its model stamp, kNN in
the three language modes against exact numpy and against the Elasticsearch client path, the
refusals (another model, a native k-NN engine), failures and resuming, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.onnx_fixtures import build_onnx_model, words_of, xquad_sentences
from tests.test_readme import small_xquad
from tests.test_search import DIM, corpus, encoder, exact_top, pool  # noqa: F401 (fixtures)
from xlir_plugin.cli import main
from xlir_plugin.connection import local_node_file
from xlir_plugin.demo import DEMO_INDEX
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.engines.opensearch import OpenSearchEngine
from xlir_plugin.errors import InputError, ModelMismatch
from xlir_plugin.index import create_index, delete_index, index_exists, index_meta
from xlir_plugin.ingest import ingest
from xlir_plugin.search import search, search_vectors
from xlir_plugin.testing.local_node import NodeInfo
from xlir_plugin.testing.opensearch import OS_VERSION

pytestmark = pytest.mark.opensearch

#: mode, its arguments, which documents it may return
MODES = [
    ("multilingual", {}, lambda d: True),
    ("cross", {"targets": "en,es"}, lambda d: d["lang"] in ("en", "es")),
    ("mono", {"lang": "de"}, lambda d: d["lang"] == "de"),
]


@pytest.fixture(scope="module")
def os_pool(opensearch, encoder, corpus):
    """The 400 XQuAD-R sentences of `test_search`, in an OpenSearch index made by XLIR."""
    name = f"xlir-test-os-{uuid.uuid4().hex[:10]}"
    report = ingest(opensearch, name, encoder, corpus, progress=False)
    assert report.indexed == len(corpus) and report.failed == 0
    yield name
    delete_index(opensearch, name)


@pytest.fixture(scope="module")
def doc_vectors(encoder, corpus):
    return encoder.encode_passages([d["text"] for d in corpus])


@pytest.fixture(scope="module")
def queries(corpus):
    return [d["text"] for d in corpus[::20]]  # 20 queries over the 8 languages


def top10_ids(client, index, encoder, queries, mode, kwargs):
    vectors = encoder.encode_queries(queries)
    return [
        [h.id for h in hits]
        for hits in search_vectors(client, index, vectors, mode, k=10, **kwargs)
    ]


def test_opensearch_index_is_lucene_hnsw_stamped_with_the_model(opensearch, os_pool, encoder):
    mapping = opensearch.indices.get_mapping(index=os_pool)[os_pool]["mappings"]
    vector = mapping["properties"]["embedding"]
    assert vector["type"] == "knn_vector" and vector["dimension"] == DIM
    assert (
        vector["method"]["engine"] == "lucene" and vector["method"]["space_type"] == "cosinesimil"
    )
    assert mapping["_meta"]["xlir"]["sha256"] == encoder.manifest.sha256
    meta = index_meta(opensearch, os_pool)
    assert meta["index_options"] == {
        "type": "hnsw",
        "engine": "lucene",
        "m": 32,
        "ef_construction": 200,
    }
    assert (meta["similarity"], meta["mapping_dims"]) == ("cosine", DIM)


def test_opensearch_int8_hnsw_is_lucene_scalar_quantization(
    opensearch, encoder, corpus, doc_vectors, queries
):
    """`int8_hnsw` on OpenSearch: lucene's 7-bit scalar quantizer under the same graph, read
    back as `int8_hnsw`, answering within the recall of a quantized graph; a rescore request
    is refused, not silently dropped (lucene has none)."""
    name = f"xlir-test-os-int8-{uuid.uuid4().hex[:8]}"
    try:
        report = ingest(
            opensearch, name, encoder, corpus, progress=False, index_options="int8_hnsw"
        )
        assert report.indexed == len(corpus) and report.failed == 0
        mapping = opensearch.indices.get_mapping(index=name)[name]["mappings"]
        parameters = mapping["properties"]["embedding"]["method"]["parameters"]
        assert parameters["encoder"] == {"name": "sq", "parameters": {"bits": 7}}
        assert index_meta(opensearch, name)["index_options"] == {
            "type": "int8_hnsw",
            "engine": "lucene",
            "m": 32,
            "ef_construction": 200,
        }
        vectors = encoder.encode_queries(queries)
        found = [
            len({h.id for h in hits} & set(exact_top(doc_vectors, corpus, qv, 10, lambda d: True)))
            for hits, qv in zip(
                search_vectors(opensearch, name, vectors, k=10), vectors, strict=True
            )
        ]
        assert sum(found) / (10 * len(queries)) >= 0.9, found
        with pytest.raises(InputError, match="does not rescore quantized vectors"):
            search_vectors(opensearch, name, vectors[:1], k=10, rescore=3.0)
    finally:
        delete_index(opensearch, name)


def test_opensearch_reads_an_encoder_set_outside_xlir_back_as_it_is():
    """Only XLIR's own encoder becomes `int8_hnsw`; another (a 4-bit `sq` made by hand) is not
    reported as a float `hnsw` index."""
    four_bits = {"name": "sq", "parameters": {"bits": 4}}
    method = {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}
    vector = {"dimension": DIM, "method": method | {"parameters": {"m": 16, "encoder": four_bits}}}
    options = OpenSearchEngine().read_vector_mapping(vector)["index_options"]
    assert options == {"type": "hnsw", "engine": "lucene", "m": 16, "encoder": four_bits}


@pytest.mark.parametrize(("mode", "kwargs", "keep"), MODES, ids=[m[0] for m in MODES])
def test_opensearch_top10_equals_exact_search(
    opensearch,
    os_pool,
    encoder,
    corpus,
    doc_vectors,
    queries,
    mode,
    kwargs,
    keep,
):
    got = top10_ids(opensearch, os_pool, encoder, queries, mode, kwargs)
    for ids, qv in zip(got, encoder.encode_queries(queries), strict=True):
        assert set(ids) == set(exact_top(doc_vectors, corpus, qv, 10, keep))
    # the one-query path returns full hits, best first, in the mode's languages
    hits = search(opensearch, os_pool, encoder, queries[0], mode, k=10, **kwargs)
    assert [h.id for h in hits] == got[0] and hits[0].text and hits[0].score >= hits[-1].score
    assert all(keep({"lang": h.lang}) for h in hits) and "parallel" in hits[0].fields


@pytest.mark.es
@pytest.mark.parametrize(("mode", "kwargs", "keep"), MODES, ids=[m[0] for m in MODES])
def test_opensearch_top10_equals_elasticsearch_client_path(
    es,
    opensearch,
    os_pool,
    pool,
    encoder,
    queries,
    mode,
    kwargs,
    keep,
):
    """The same model, the same documents: the same top 10 from both engines."""
    on_os = top10_ids(opensearch, os_pool, encoder, queries, mode, kwargs)
    on_es = top10_ids(es, pool[0], encoder, queries, mode, kwargs)
    assert [set(ids) for ids in on_os] == [set(ids) for ids in on_es]


def test_opensearch_refuses_another_model_before_sending(opensearch, os_pool, tmp_path, corpus):
    build_onnx_model(tmp_path, words_of(["query: a"]), dim=DIM, seed=7)
    other = OnnxEncoder(tmp_path)
    with pytest.raises(ModelMismatch, match="sha256"):
        search(opensearch, os_pool, other, "a", k=3)
    before = opensearch.count(index=os_pool)["count"]
    with pytest.raises(ModelMismatch, match="sha256"):
        ingest(opensearch, os_pool, other, [{"text": "new", "lang": "en"}], progress=False)
    assert opensearch.count(index=os_pool)["count"] == before


@pytest.mark.parametrize("engine", ["faiss", "nmslib"])
def test_opensearch_refuses_a_native_knn_engine_and_the_node_stays_green(
    opensearch,
    encoder,
    engine,
):
    """The Maven Central k-NN plugin has no native libraries: a faiss index would take the
    node down at its first refresh, so the request never leaves XLIR."""
    name = f"xlir-test-{engine}-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InputError, match=f"engine '{engine}' needs the k-NN plugin's native"):
        create_index(opensearch, name, encoder.manifest, f"hnsw,engine={engine}")
    with pytest.raises(InputError, match="lucene engine takes hnsw or int8_hnsw"):
        create_index(opensearch, name, encoder.manifest, "bbq_hnsw")
    with pytest.raises(InputError, match=r"does not rescore\); got 'int8_hnsw' with \['rescore"):
        create_index(opensearch, name, encoder.manifest, "int8_hnsw,oversample=3")
    assert not index_exists(opensearch, name)
    assert opensearch.cluster.health()["status"] in ("green", "yellow")


def test_opensearch_failures_file_and_resume(opensearch, encoder, corpus, tmp_path):
    """Bad documents go to the failures file with their line; a second run (as after a kill
    part way) skips what is indexed and sends the rest."""
    name = f"xlir-test-resume-{uuid.uuid4().hex[:8]}"
    docs = corpus[:60]
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps(d) for d in docs[:30]] + ['{"text": 1}', "not json"]
    path.write_text("\n".join(lines) + "\n")
    failures = tmp_path / "failures.jsonl"
    try:
        first = ingest(opensearch, name, encoder, path, failures_path=failures, progress=False)
        assert (first.indexed, first.failed) == (30, 2)
        assert [json.loads(x)["line"] for x in failures.read_text().splitlines()] == [31, 32]
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        second = ingest(opensearch, name, encoder, path, progress=False)
        assert (second.skipped, second.indexed, second.failed) == (30, 30, 0)
        assert opensearch.count(index=name)["count"] == 60
    finally:
        delete_index(opensearch, name)


def test_opensearch_cli_index_search_eval(
    opensearch,
    opensearch_settings,
    encoder,
    corpus,
    xquad_dir,
    tmp_path,
    capsys,
):
    """`xlir index|search|eval --engine opensearch` as a user types them."""
    name = f"xlir-test-cli-{uuid.uuid4().hex[:8]}"
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in corpus[:80]))
    where = ["--engine", "opensearch", "--es-url", opensearch_settings.url]
    model = ["--model", str(encoder.model_dir)]
    try:
        assert main(["index", *model, "--index", name, "--input", str(docs), "--json", *where]) == 0
        assert json.loads(capsys.readouterr().out)["indexed"] == 80
        query = corpus[0]["text"]
        assert main(["search", query, *model, "--index", name, "--json", "--mode", "cross",
                     "--target", "de", *where]) == 0  # fmt: skip
        hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(hits) == 10 and {h["lang"] for h in hits} == {"de"}
    finally:
        delete_index(opensearch, name)
    out = tmp_path / "eval"
    assert main(["eval", *model, "--data", str(xquad_dir), "--langs", "en,de", "--max-queries",
                 "20", "--es-depth", "20", "--output", str(out), *where]) == 0  # fmt: skip
    result = json.loads((out / "results.json").read_text())
    assert set(result["backends"]) == {"exact", "es"} and result["queries"] == 40
    assert result["settings"]["engine"] == "OpenSearch"
    assert result["gap"]["multi_ann_recall_at_10"] >= 0.95
    assert np.isfinite(result["backends"]["es"]["mean"]["cross"])


def test_opensearch_demo_client_side(
    opensearch, opensearch_settings, encoder, xquad_dir, tmp_path, capsys
):
    """`xlir demo --engine opensearch` indexes the pool and answers across languages (the
    in-engine default falls back to the client path: the Python side drives the ES plugin)."""
    small_xquad(xquad_dir, tmp_path / "xquad-r")
    args = ["demo", "--engine", "opensearch", "--es-url", opensearch_settings.url, "--model",
            str(encoder.model_dir), "--data", str(tmp_path / "xquad-r"), "--json"]  # fmt: skip
    try:
        assert main(args) == 0
    finally:
        delete_index(opensearch, DEMO_INDEX)
    demo = json.loads(capsys.readouterr().out)
    assert demo["opensearch"] == opensearch_settings.url and demo["indexed"]["failed"] == 0
    assert demo["answers"] and all(answer["hits"] for answer in demo["answers"])


def test_opensearch_node_file_and_the_wrong_engine(
    opensearch_settings, encoder, tmp_path, monkeypatch, capsys
):
    """`xlir os status|env` read os-node.json (apart from Elasticsearch's); a verb with
    `--engine opensearch` and no URL finds the node there; the Elasticsearch client pointed
    at OpenSearch fails in one line that names the flag to add."""
    monkeypatch.setenv("XLIR_CACHE", str(tmp_path))
    monkeypatch.delenv("XLIR_ES_URL", raising=False)
    assert main(["os", "status", "--json"]) == 1 and main(["es", "status", "--json"]) == 1
    capsys.readouterr()
    url = opensearch_settings.url
    info = NodeInfo(url, "", "", os.getpid(), str(tmp_path), OS_VERSION, engine="opensearch")
    info.save(local_node_file("opensearch"))
    assert main(["os", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "green"
    assert main(["os", "env"]) == 0
    assert capsys.readouterr().out.split() == [
        "export",
        f"XLIR_ES_URL={url}",
        "XLIR_ENGINE=opensearch",
    ]
    assert main(["es", "status", "--json"]) == 1  # the Elasticsearch node file is another
    capsys.readouterr()
    model = ["--model", str(encoder.model_dir)]
    assert main(["search", "a", *model, "--index", "xlir-test-none", "--engine", "opensearch"]) == 2
    assert "index 'xlir-test-none' does not exist" in capsys.readouterr().err
    assert main(["search", "a", *model, "--index", "x", "--es-url", url]) == 2
    err = capsys.readouterr().err
    assert f"{url} is not Elasticsearch" in err and "give --engine opensearch" in err


def test_opensearch_kill_the_indexer_mid_ingest_then_rerun_resumes(
    opensearch, opensearch_settings, encoder, xquad_dir, tmp_path
):
    """SIGKILL `xlir index --engine opensearch` part way; the same command again skips what
    is indexed and ends with every document exactly once."""
    docs = xquad_sentences(xquad_dir.parent, per_lang=300)
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    index = f"xlir-test-kill-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "xlir_plugin.cli", "index", "--model", str(encoder.model_dir),
           "--index", index, "--input", str(path), "--batch-size", "32", "--json"]  # fmt: skip
    env = os.environ | {"XLIR_ENGINE": "opensearch", "XLIR_ES_URL": opensearch_settings.url}
    first = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline:
            if (
                index_exists(opensearch, index)
                and indexed_so_far(opensearch, index) >= len(docs) // 4
            ):
                break
            time.sleep(0.05)
        assert first.poll() is None, "the ingest ended before the kill"
        first.kill()
        first.wait(30)
        second = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
        assert second.returncode == 0, second.stderr
        report = json.loads(second.stdout)
        assert (report["read"], report["failed"]) == (len(docs), 0)
        assert report["skipped"] > 0 and report["indexed"] + report["skipped"] == len(docs)
        assert opensearch.count(index=index)["count"] == len(docs)
    finally:
        delete_index(opensearch, index)


def indexed_so_far(opensearch, index: str) -> int:
    """Documents indexed, refreshed or not (indexing stats: the load pauses refreshes)."""
    stats = opensearch.indices.stats(index=index, metric="indexing")
    return stats["_all"].get("primaries", {}).get("indexing", {}).get("index_total", 0)
