"""HTTPS with the project's own CA, and credentials that never leak into any output.

`spare_node` serves HTTPS with a certificate signed by a CA made by `testing/tls.py`; the
client verifies it with `--es-ca-certs` / `XLIR_ES_CA_CERTS` and refuses it without them.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.onnx_fixtures import build_onnx_model, words_of
from xlir_plugin.cli import main
from xlir_plugin.testing.tls import make_certs

pytestmark = pytest.mark.es

DOCS = [
    {"id": "en-1", "lang": "en", "text": "Berlin is the capital of Germany."},
    {"id": "de-1", "lang": "de", "text": "Berlin ist die Hauptstadt von Deutschland."},
    {"id": "es-1", "lang": "es", "text": "Madrid es la capital de España."},
]
API_KEY = "WExJUl9BUElfS0VZX1NFQ1JFVDpub3QtYS1yZWFsLWtleQ=="  # a made-up key: must never show


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tls-model")
    build_onnx_model(path, words_of(["query: passage:", *(d["text"] for d in DOCS)]), dim=16)
    return path


@pytest.fixture
def docs(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps(d, ensure_ascii=False) for d in DOCS] + ['{"text": "no lang"}']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def no_es_env(monkeypatch):
    for name in ("URL", "API_KEY", "USER", "PASSWORD", "CA_CERTS"):
        monkeypatch.delenv(f"XLIR_ES_{name}", raising=False)
    return monkeypatch


def flags(spare, *, ca: str | None = "node", password: str | None = None) -> list[str]:
    info = spare.info
    out = ["--es-url", info.url, "--es-user", info.user]
    out += ["--es-password", password or info.password]
    if ca:
        out += ["--es-ca-certs", info.ca_certs if ca == "node" else ca]
    return out


def test_tls_node_is_verified_with_the_flag_or_the_environment(
    spare_node, model_dir, docs, no_es_env, capsys
):
    assert spare_node.info.url.startswith("https://")
    index = ["index", "--model", str(model_dir), "--index", "xlir-tls", "--input", str(docs)]
    assert main([*index, "--json", *flags(spare_node)]) == 1  # 1: the line without `lang`
    assert json.loads(capsys.readouterr().out)["indexed"] == 3
    info = spare_node.info
    for name, value in [
        ("URL", info.url),
        ("USER", info.user),
        ("PASSWORD", info.password),
        ("CA_CERTS", info.ca_certs),
    ]:
        no_es_env.setenv(f"XLIR_ES_{name}", value)
    search = ["search", "Berlin", "--model", str(model_dir), "--index", "xlir-tls", "--json"]
    assert main(search) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {h["id"] for h in hits} == {"en-1", "de-1", "es-1"}


def test_tls_unverified_certificate_is_refused_with_a_clear_message(
    spare_node, model_dir, no_es_env, tmp_path, capsys
):
    other_ca = make_certs(tmp_path / "other")["ca"]  # a CA that did not sign the node's cert
    search = ["search", "Berlin", "--model", str(model_dir), "--index", "xlir-tls"]
    for ca in (None, str(other_ca)):
        assert main([*search, *flags(spare_node, ca=ca)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "presented a TLS certificate that could not be verified" in err, err
        assert "certificate verify failed" in err and "--es-ca-certs" in err, err
        assert spare_node.info.password not in err


def test_secret_never_in_logs_errors_failures_reports_or_json(
    spare_node, model_dir, docs, no_es_env, tmp_path, capsys, caplog
):
    info = spare_node.info
    secrets = [info.password, API_KEY, "not-the-password-0123456789"]
    index = ["index", "--model", str(model_dir), "--index", "xlir-secret", "--input", str(docs)]
    search = ["search", "Berlin", "--model", str(model_dir), "--index", "xlir-secret"]
    port = info.url.rsplit(":", 1)[1]
    runs = [
        [*index, "--json", *flags(spare_node)],
        [*index, *flags(spare_node)],
        [*search, "--json", *flags(spare_node)],
        [*search, *flags(spare_node, password=secrets[2])],  # wrong password: 401
        [*search, "--es-url", info.url, "--es-api-key", API_KEY, "--es-ca-certs", info.ca_certs],
        [*search, *flags(spare_node, ca=None)],  # unverified certificate
        # credentials inside the URL, of a port nobody listens on
        [*search, "--es-url", f"https://elastic:{info.password}@127.0.0.1:1", "--json"],
        [*search, "--es-url", f"https://elastic:{info.password}@127.0.0.1:{port}"],
    ]
    outputs = []
    with caplog.at_level(logging.DEBUG):
        for argv in runs:
            code = main(argv)
            captured = capsys.readouterr()
            outputs += [captured.out, captured.err]
            assert code in (0, 1, 2), argv
    outputs.append(caplog.text)
    outputs.append((tmp_path / "docs.jsonl.failures.jsonl").read_text())
    assert any("rejected authentication" in text for text in outputs)
    assert any("https://127.0.0.1:1" in text for text in outputs)  # the URL, shown bare
    for secret in secrets:
        leaked = [text for text in outputs if secret in text]
        assert not leaked, f"a secret appears in: {leaked[0][:500]}"
