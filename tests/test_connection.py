"""One way to find the cluster: Python's `EsSettings.from_env` and every CLI verb resolve it
alike (explicit values, then `XLIR_ES_*`, then the node file of `xlir es start`)."""

from __future__ import annotations

import json

import pytest

from xlir_plugin.cli import build_parser, main
from xlir_plugin.connection import EsSettings, client, local_node_file, public_url
from xlir_plugin.connection_flags import settings_from_args
from xlir_plugin.errors import ConnectionFailed

LOCAL = {"url": "http://127.0.0.1:9311", "user": "elastic", "password": "local-secret"}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No XLIR_ES_* variables and an empty cache (no node file)."""
    for name in ("URL", "API_KEY", "USER", "PASSWORD", "CA_CERTS", "REQUEST_TIMEOUT"):
        monkeypatch.delenv(f"XLIR_ES_{name}", raising=False)
    monkeypatch.setenv("XLIR_CACHE", str(tmp_path))
    return monkeypatch


def write_node_file() -> None:
    local_node_file().write_text(json.dumps({**LOCAL, "pid": 1, "workdir": "/x", "version": "9"}))


def test_from_env_finds_the_local_node(clean_env):
    assert EsSettings.from_env().url is None
    write_node_file()
    settings = EsSettings.from_env()
    assert (settings.url, settings.user, settings.password) == tuple(LOCAL.values())


def test_environment_then_explicit_values_win(clean_env):
    write_node_file()
    clean_env.setenv("XLIR_ES_URL", "https://es.example:9200")
    clean_env.setenv("XLIR_ES_API_KEY", "key")
    settings = EsSettings.from_env()
    assert (settings.url, settings.api_key, settings.password) == (
        "https://es.example:9200",
        "key",
        None,
    )
    assert EsSettings.from_env(url="http://other:9200").url == "http://other:9200"
    clean_env.delenv("XLIR_ES_URL")
    with_user = EsSettings.from_env(user="bob")  # the local node's URL, the given user
    assert (with_user.url, with_user.user) == (LOCAL["url"], "bob")


@pytest.mark.parametrize(
    "flags",
    [[], ["--es-user", "bob"], ["--es-url", "http://flag:9200", "--es-api-key", "k"]],
)
def test_cli_resolves_as_python_does(clean_env, flags):
    write_node_file()
    clean_env.setenv("XLIR_ES_CA_CERTS", "/ca.pem")
    args = build_parser().parse_args(["search", "q", "--index", "x", *flags])
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    python = EsSettings.from_env(
        url=given.get("--es-url"), user=given.get("--es-user"), api_key=given.get("--es-api-key")
    )
    assert settings_from_args(args) == python


def test_no_cluster_is_told_in_each_side_words(clean_env, capsys):
    with pytest.raises(ConnectionFailed, match=r"give url='http://127\.0\.0\.1:9200'"):
        client(EsSettings.from_env())
    assert main(["search", "q", "--index", "x"]) == 2
    err = capsys.readouterr().err
    assert "give --es-url http://127.0.0.1:9200, set XLIR_ES_URL" in err and "url=" not in err


def test_urls_shown_without_credentials():
    assert public_url("https://bob:s3cret@es.example:9243/p") == "https://es.example:9243/p"
    assert public_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"
    assert "s3cret" not in repr(EsSettings(url="https://bob:s3cret@es.example"))
