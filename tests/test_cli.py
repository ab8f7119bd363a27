"""The `xlir` CLI end to end on a real node: index, re-index, search, and clear errors."""

from __future__ import annotations

import json
import os

import pytest

from tests.onnx_fixtures import build_onnx_model, words_of, xquad_sentences
from xlir_plugin.cli import main
from xlir_plugin.connection import local_node_file
from xlir_plugin.testing.elasticsearch import ES_VERSION, NodeInfo

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
        assert (report["read"], report["indexed"] + report["skipped"], report["failed"]) == (
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


# -- the user's words: flags in CLI errors, JSON for scripts without secrets --------------------


@pytest.mark.parametrize(
    ("args", "told", "not_told"),
    [
        (
            ["--mode", "cross"],
            "--mode cross needs the passage languages, e.g. --target en,es",
            "targets",
        ),
        (["--mode", "mono"], "--mode mono needs the query language, e.g. --lang de", "lang="),
        (["--target", "en"], "--target applies to --mode cross only", "targets"),
        (["-k", "0"], "-k must be a positive integer", "k="),
        (["--num-candidates", "5"], "--num-candidates must be between -k (10)", "num_candidates"),
    ],
)
def test_cli_errors_name_the_flags_typed(es_settings, model_dir, capsys, args, told, not_told):
    search = ["search", "Wer?", "--model", str(model_dir), "--index", "no-such-index"]
    assert main(search + args + es_flags(es_settings)) == 2
    err = capsys.readouterr().err
    assert told in err and not_told not in err, err


def test_index_options_error_names_the_flag(es_settings, model_dir, tmp_path, capsys):
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"text": "x", "lang": "en"}\n')
    index = ["index", "--model", str(model_dir), "--index", "x", "--input", str(docs)]
    assert main(index + ["--index-options", "ivf"] + es_flags(es_settings)) == 2
    err = capsys.readouterr().err
    assert "--index-options: the index type must be one of" in err and "index_options" not in err


def test_every_result_verb_prints_json_without_secrets(
    es, es_settings, index_name, model_dir, corpus, tmp_path, capsys
):
    from tests.test_evaluation import write_toy

    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in corpus) + "\n")
    model = ["--model", str(model_dir)]
    flags = es_flags(es_settings)
    (tmp_path / "toy").mkdir()
    toy = write_toy(tmp_path / "toy")
    runs = {
        "index": ["index", *model, "--index", index_name, "--input", str(docs)],
        "search": ["search", corpus[0]["text"], *model, "--index", index_name],
        "eval": ["eval", *model, "--data", str(toy), "--output", str(tmp_path / "eval")],
        "demo": ["demo", *model, "--index", index_name, "--input", str(docs), "--query", "Berlin"],
    }
    printed = {}
    for verb, args in runs.items():
        assert main([*args, "--json", *flags]) == 0, verb
        printed[verb] = capsys.readouterr().out
        assert es_settings.password not in printed[verb], verb
    assert json.loads(printed["index"])["indexed"] == len(corpus)
    assert all(json.loads(line)["id"] for line in printed["search"].splitlines())
    assert set(json.loads(printed["eval"])["backends"]) == {"exact", "es"}
    demo = json.loads(printed["demo"])
    assert demo["elasticsearch"] == es_settings.url and len(demo["queries"][0]["hits"]) == 3


def test_es_status_json_leaves_the_password_in_the_node_file(
    es_settings, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("XLIR_CACHE", str(tmp_path))
    assert main(["es", "status", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"running": False}
    info = NodeInfo(
        es_settings.url, es_settings.user, es_settings.password, os.getpid(), "", ES_VERSION
    )
    info.save(local_node_file())
    assert main(["es", "status", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["status"] in ("green", "yellow") and es_settings.password not in out


def test_model_info_says_what_is_served_and_if_the_gate_was_forced(model_dir, capsys):
    from xlir_plugin.manifest import Manifest

    manifest = Manifest.load(model_dir)
    manifest.parity = {"cosine_min": 0.95, "passed": False, "forced": True}
    forced = model_dir.parent / "cli-model-forced"
    forced.mkdir(exist_ok=True)
    for path in model_dir.iterdir():
        (forced / path.name).write_bytes(path.read_bytes())
    manifest.save(forced)
    assert main(["model", "info", "--model", str(forced), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 16 and info["sha256"] == manifest.sha256
    assert info["parity"]["forced"] is True and info["parity"]["cosine_min"] == 0.95
    assert main(["model", "info", "--model", str(model_dir)]) == 0
    assert "forced" in capsys.readouterr().out


def test_eval_without_the_eval_extra_is_one_clear_line(model_dir, monkeypatch, capsys):
    """The serving install has no ranx/matplotlib: say so before encoding anything."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ranx" else real(name, *a)
    )
    assert main(["eval", "--model", str(model_dir), "--backend", "exact"]) == 2
    err = capsys.readouterr().err
    assert "needs ranx" in err and "xlir[eval]" in err and "Traceback" not in err
