"""kNN search against the real node: recall vs exact numpy, language modes, hybrid, rescore."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model, words_of, xquad_sentences
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.errors import InputError, ModelMismatch, XlirError
from xlir_plugin.fusion import rrf
from xlir_plugin.index import cached_meta, create_index, delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.search import (
    _msearch,
    default_num_candidates,
    knn_body,
    lang_filter,
    search,
    search_vector,
    search_vectors,
)

DIM = 64
PER_LANG = 50  # 8 languages -> 400 sentences


# -- no node needed ---------------------------------------------------------------------------


def test_lang_filter_modes():
    assert lang_filter("multilingual") is None
    assert lang_filter("cross", targets="en, ES") == {"terms": {"lang": ["en", "es"]}}
    assert lang_filter("cross", lang="de", targets=["en"]) == {"terms": {"lang": ["en"]}}
    assert lang_filter("mono", lang="DE") == {"term": {"lang": "de"}}
    # a Python caller is told about its arguments, spelled as Python
    with pytest.raises(InputError, match="mode='cross' needs the passage languages, e.g. targets="):
        lang_filter("cross", lang="de")
    with pytest.raises(InputError, match="mode='mono' needs the query language, e.g. lang='de'"):
        lang_filter("mono")
    with pytest.raises(InputError, match="mode must be one of"):
        lang_filter("bilingual")
    with pytest.raises(InputError, match="targets applies to mode='cross' only"):
        lang_filter("multilingual", targets="en")


def test_rrf():
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]], rank_constant=60)
    assert [item for item, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert len(rrf([["a", "b"], ["b"]], k=1)) == 1


def test_num_candidates_default():
    assert default_num_candidates(10) == 100 and default_num_candidates(50) == 500
    assert default_num_candidates(5000) == 10_000


# -- against the node -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(xquad_dir):
    return xquad_sentences(xquad_dir.parent, per_lang=PER_LANG)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, corpus) -> OnnxEncoder:
    path = tmp_path_factory.mktemp("xquad-model")
    words = words_of(["query:", "passage:", *(d["text"] for d in corpus)])
    build_onnx_model(path, words, dim=DIM, max_length=128)
    return OnnxEncoder(path)


@pytest.fixture(scope="module")
def pool(es, encoder, corpus):
    """One index (server-default type: int8_hnsw at 64 dims) holding all 400 sentences."""
    name = f"xlir-test-pool-{uuid.uuid4().hex[:10]}"
    report = ingest(es, name, encoder, corpus, progress=False)
    assert report.indexed == len(corpus) and report.failed == 0
    vectors = encoder.encode_passages([d["text"] for d in corpus])
    yield name, vectors
    delete_index(es, name)


def exact_top(doc_vectors, corpus, query_vector, k, keep=None):
    scores = doc_vectors @ query_vector
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep(corpus[i])]
    return [corpus[i]["id"] for i in order[:k]]


def recall(got_ids, want_ids):
    return len(set(got_ids) & set(want_ids)) / len(want_ids)


@pytest.mark.es
def test_round_trip_recall_matches_exact_numpy(es, encoder, corpus, pool):
    index, doc_vectors = pool
    queries = [d["text"] for d in corpus[::13]]  # ~31 queries over all languages
    qvecs = encoder.encode_queries(queries)
    results = search_vectors(es, index, qvecs, k=10, rescore=True)
    recalls = [
        recall([h.id for h in hits], exact_top(doc_vectors, corpus, q, 10))
        for hits, q in zip(results, qvecs, strict=True)
    ]
    assert np.mean(recalls) >= 0.95, recalls
    # the one-query path agrees with the batched one and returns full hits
    hits = search(es, index, encoder, queries[0], k=10, rescore=True)
    assert [h.id for h in hits] == [h.id for h in results[0]]
    assert hits[0].text and hits[0].lang and "parallel" in hits[0].fields
    assert hits[0].score >= hits[-1].score


@pytest.mark.es
def test_one_search_returns_what_the_knn_section_returned(es, encoder, corpus, pool):
    """`search` sends one `_search` with a `knn` query and a filtered response (before: the
    top-level `knn` section through `_msearch`): the same hits, scores, languages, texts and
    extra fields, in every mode."""
    index, _ = pool
    index_type = cached_meta(es, index)["index_options"].get("type")
    modes = [("multilingual", None, None), ("cross", None, "de,es"), ("mono", "ru", None)]
    for i, doc in enumerate(corpus[::37]):
        mode, lang, targets = modes[i % len(modes)]
        hits = search(es, index, encoder, doc["text"], mode, lang, targets, k=10)
        vector = encoder.encode_queries([doc["text"]])[0].tolist()
        filters = [f] if (f := lang_filter(mode, lang, targets)) else []
        section = knn_body(vector, 10, None, filters, None, index_type)
        section["knn"] = section.pop("query")["knn"]
        (before,) = _msearch(es, index, [section])
        assert [h.as_dict() for h in hits] == [h.as_dict() for h in before]


@pytest.mark.es
def test_search_error_names_the_root_cause(es, encoder, pool):
    index, _ = pool
    with pytest.raises(XlirError, match=f"search on '{index}' failed: .*bogus"):
        search(es, index, encoder, "paris", filter={"match_all": {"bogus": 1}})


@pytest.mark.es
def test_cross_and_mono_filters(es, encoder, corpus, pool):
    index, doc_vectors = pool
    query = next(d for d in corpus if d["lang"] == "en")["text"]
    cross = search(es, index, encoder, query, mode="cross", lang="en", targets="de", k=20)
    assert len(cross) == 20 and {h.lang for h in cross} == {"de"}
    two = search(es, index, encoder, query, mode="cross", targets=["de", "es"], k=30)
    assert {h.lang for h in two} <= {"de", "es"} and len(two) == 30
    mono = search(es, index, encoder, query, mode="mono", lang="en", k=PER_LANG)
    assert len(mono) == PER_LANG and {h.lang for h in mono} == {"en"}
    # the pre-filtered ranking equals exact ranking restricted to German
    qv = encoder.encode_queries([query])[0]
    want = exact_top(doc_vectors, corpus, qv, 10, keep=lambda d: d["lang"] == "de")
    assert recall([h.id for h in cross[:10]], want) >= 0.9
    # per-query languages in the batched mono search
    queries = [d for d in corpus[::50]]
    results = search_vectors(
        es,
        index,
        encoder.encode_queries([d["text"] for d in queries]),
        mode="mono",
        lang=[d["lang"] for d in queries],
        k=5,
    )
    for d, hits in zip(queries, results, strict=True):
        assert len(hits) == 5 and {h.lang for h in hits} == {d["lang"]}
        assert hits[0].id == d["id"]  # a sentence finds itself first
    with pytest.raises(InputError, match="needs the passage languages"):
        search(es, index, encoder, query, mode="cross", k=5)
    with pytest.raises(InputError, match="query language"):
        search(es, index, encoder, query, mode="mono", k=5)


@pytest.mark.es
def test_hybrid_bm25_plus_knn(es, encoder, corpus, pool):
    index, _ = pool
    doc = next(d for d in corpus if d["lang"] == "de")
    hits = search(es, index, encoder, doc["text"], hybrid=True, k=10)
    assert hits[0].id == doc["id"] and len(hits) == 10
    assert hits[0].score == pytest.approx(2 / 61)  # first in both rankings
    hits = search(es, index, encoder, doc["text"], mode="cross", targets="es", hybrid=True, k=5)
    assert {h.lang for h in hits} == {"es"}


@pytest.mark.es
def test_search_refuses_other_model(es, tmp_path, corpus, pool):
    index, _ = pool
    build_onnx_model(tmp_path, words_of(["query: a"]), dim=DIM, seed=7)
    with pytest.raises(ModelMismatch, match="sha256"):
        search(es, index, OnnxEncoder(tmp_path), "a", k=3)
    with pytest.raises(ModelMismatch, match="64-dim vectors"):
        search_vector(es, index, np.ones(8), k=3)


@pytest.mark.es
@pytest.mark.parametrize("index_type", ["flat", "hnsw", "bbq_hnsw"])
def test_fixed_known_vectors(es, index_name, encoder, index_type):
    """Documents that carry their own vectors: flat is exact, the others reach recall 0.95."""
    create_index(es, index_name, encoder.manifest, index_type)
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    langs = ["en", "de", "es"]
    docs = [
        {"id": f"v{i}", "lang": langs[i % 3], "text": f"vector {i}", "embedding": v.tolist()}
        for i, v in enumerate(vectors)
    ]
    assert ingest(es, index_name, None, docs, progress=False).indexed == 300
    queries = rng.standard_normal((20, DIM)).astype(np.float32)
    # 1-bit BBQ on random 64-dim vectors needs a deep exact rescore (oversample 10)
    rescore = 10.0 if index_type.startswith("bbq") else None
    results = search_vectors(es, index_name, queries, k=10, rescore=rescore)
    scores = queries @ vectors.T / np.linalg.norm(queries, axis=1, keepdims=True)
    recalls = []
    for hits, row in zip(results, scores, strict=True):
        want = [f"v{i}" for i in np.argsort(-row)[:10]]
        got = [h.id for h in hits]
        if index_type == "flat":
            assert got == want
            # cosine score as Elasticsearch reports it: (1 + cos) / 2
            np.testing.assert_allclose(hits[0].score, (1 + row.max()) / 2, atol=1e-4)
        recalls.append(recall(got, want))
    assert np.mean(recalls) >= 0.95, recalls
    if rescore:  # the rescore clause is really sent: without it BBQ loses neighbours
        plain = search_vectors(es, index_name, queries, k=10, rescore=0)
        assert (
            np.mean(
                [
                    recall([h.id for h in p], [h.id for h in r])
                    for p, r in zip(plain, results, strict=True)
                ]
            )
            < 0.9
        )
    de = search_vector(es, index_name, queries[0], mode="cross", targets="de", k=10)
    assert {h.lang for h in de} == {"de"}
    want = [f"v{i}" for i in np.argsort(-scores[0]) if i % 3 == 1][:10]
    assert recall([h.id for h in de], want) >= 0.9
