"""The `xlir` CLI end to end on a real node: index, re-index, search, and clear errors."""

from __future__ import annotations

import json

import pytest

from tests.onnx_fixtures import build_onnx_model, words_of, xquad_sentences
from xlir_plugin.cli import main

pytestmark = pytest.mark.es


@pytest.fixture(scope="module")
def corpus(xquad_dir):
    return xquad_sentences(xquad_dir.parent, langs=("en", "de", "es"), per_lang=20)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("cli-model")
    build_onnx_model(path, words_of(["query:", "passage:", *(d["text"] for d in corpus)]), dim=16)
    return path


def es_flags(settings) -> list[str]:
    return [
        "--es-url",
        settings.url,
        "--es-user",
        settings.user,
        "--es-password",
        settings.password,
    ]


def test_index_twice_then_search_cross(
    es, es_settings, index_name, model_dir, corpus, tmp_path, capsys
):
    docs = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": d["text"], "lang": d["lang"]}, ensure_ascii=False) for d in corpus]
    docs.write_text("\n".join([*lines, "{not json", '{"text": "no language"}']) + "\n")
    args = [
        "index",
        "--model",
        str(model_dir),
        "--index",
        index_name,
        "--input",
        str(docs),
        "--json",
    ]

    for _ in range(2):  # a re-run overwrites: same ids, same count
        assert main(args + es_flags(es_settings)) == 1  # 1: two lines failed
        report = json.loads(capsys.readouterr().out)
        assert (report["read"], report["indexed"], report["failed"]) == (
            len(corpus) + 2,
            len(corpus),
            2,
        )
    assert es.count(index=index_name)["count"] == len(corpus)
    failures = [
        json.loads(x) for x in (tmp_path / "docs.jsonl.failures.jsonl").read_text().splitlines()
    ]
    assert sorted(f["line"] for f in failures) == [len(corpus) + 1, len(corpus) + 2]

    query = corpus[0]["text"]
    search = ["search", query, "--model", str(model_dir), "--index", index_name, "--json"]
    assert (
        main(search + ["--mode", "cross", "--target", "de", "-k", "5"] + es_flags(es_settings)) == 0
    )
    hits = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(hits) == 5 and {h["lang"] for h in hits} == {"de"}


def test_table_output_shows_the_exact_match_first(
    es_settings, index_name, model_dir, corpus, tmp_path, capsys
):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in corpus) + "\n")
    base = ["--model", str(model_dir), "--index", index_name] + es_flags(es_settings)
    assert main(["index", "--input", str(docs), *base]) == 0
    capsys.readouterr()
    target = corpus[3]
    assert main(["search", target["text"], "--mode", "mono", "--lang", target["lang"], *base]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["#", "score", "lang"]
    assert table[1].split()[2] == target["lang"] and target["text"][:20] in table[1]


def test_unreachable_cluster_is_one_clear_line(model_dir, tmp_path, capsys):
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"text": "x", "lang": "en"}\n')
    code = main(
        [
            "index",
            "--model",
            str(model_dir),
            "--index",
            "x",
            "--input",
            str(docs),
            "--es-url",
            "http://127.0.0.1:9",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "cannot reach Elasticsearch at http://127.0.0.1:9" in err[0]


def test_wrong_password_is_one_clear_line(es_settings, model_dir, capsys):
    code = main(
        [
            "search",
            "hello",
            "--model",
            str(model_dir),
            "--index",
            "x",
            "--es-url",
            es_settings.url,
            "--es-user",
            "elastic",
            "--es-password",
            "nope",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "rejected authentication" in err and "\n" not in err
