"""The README's examples run as written, so they cannot drift from the code.

The Python API block and the `xlir` shell block of "The three stages" run in a scratch
directory laid out as the README assumes: `.venv` (a link to this one), `runs/hybrid-onnx`
(a tiny exported model), `docs.jsonl`, and `XLIR_DATA` holding a small slice of XQuAD-R.
No `XLIR_ES_URL` is set: both examples must find this session's node the way a user's shell
finds the one `xlir es start` left running, through its node file in `XLIR_CACHE`. The
default model's slots in that cache hold the tiny model too (its export) and the real
materialized model (a link), so `xlir demo` and `xlir model ...` take seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from export.cache import exported_dir
from tests.conftest import REPO_ROOT
from tests.onnx_fixtures import build_onnx_model, words_of
from xlir_plugin.default_model import DEFAULT_MODEL_DIRNAME, materialize_default
from xlir_plugin.demo import DEMO_INDEX
from xlir_plugin.evaluation.data import load_lareqa
from xlir_plugin.index import delete_index
from xlir_plugin.projection import PROJECTION_INFO_FILE, default_projection
from xlir_plugin.testing.elasticsearch import ES_VERSION, NodeInfo
from xlir_plugin.testing.opensearch import OS_VERSION

pytestmark = [pytest.mark.es, pytest.mark.slow]

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
INDEXES = ("docs", DEMO_INDEX)  # the index names the examples use


def code_block(lang: str, marker: str) -> str:
    """The README's ```lang block that contains `marker`."""
    blocks = re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"{len(found)} {lang} blocks of the README contain {marker!r}"
    return found[0]


def shell_commands(block: str) -> list[str]:
    """One command a line, comments and blank lines left out."""
    lines = (line.split("  #")[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def small_xquad(source: Path, target: Path, questions: int = 12) -> None:
    """The first paragraphs of XQuAD-R holding `questions` questions, in all 11 languages
    (parallel: the same paragraphs and question ids in every language)."""
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        article = data["data"][0]
        kept, count = [], 0
        for paragraph in article["paragraphs"]:
            if count >= questions:
                break
            kept.append(paragraph)
            count += len(paragraph["qas"])
        data["data"] = [{**article, "paragraphs": kept}]
        (target / path.name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, es, es_settings, xquad_dir):
    """A directory and an environment as a user of the README has them."""
    for name in INDEXES:
        assert not es.indices.exists(index=name), f"index {name!r} exists on the test cluster"
    work = tmp_path_factory.mktemp("readme")
    (work / ".venv").symlink_to(REPO_ROOT / ".venv")
    small_xquad(xquad_dir, work / "data" / "xquad-r")
    data = load_lareqa(work / "data" / "xquad-r")
    texts = [c.text for c in data.candidates] + [q.text for q in data.questions]
    model = work / "runs" / "hybrid-onnx"
    build_onnx_model(model, words_of(["query:", "passage:", "Wer hat", *texts]), dim=16)
    docs = [
        {"text": c.text, "lang": c.lang} for c in data.candidates if c.lang in ("de", "en", "es")
    ]
    (work / "docs.jsonl").write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs))

    cache = work / "cache"
    (cache / "models").mkdir(parents=True)
    default_dir = cache / "models" / exported_dir("default").name
    shutil.copytree(model, default_dir)
    shipped = default_projection()  # stands in for the default with the shipped head
    if shipped is not None:
        (default_dir / PROJECTION_INFO_FILE).write_text(json.dumps(shipped.info()))
    (cache / "models" / DEFAULT_MODEL_DIRNAME).symlink_to(materialize_default(progress=False))
    # the node file `xlir es start` writes; its pid (this process) is alive for the whole run
    NodeInfo(
        es_settings.url, es_settings.user, es_settings.password, os.getpid(), str(work), ES_VERSION
    ).save(cache / "es-node.json")

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLIR_ES_URL", "XLIR_ES_USER", "XLIR_ES_PASSWORD")
    }
    env |= {"XLIR_CACHE": str(cache), "XLIR_DATA": str(work / "data")}
    yield work, env
    for name in INDEXES:
        es.options(ignore_status=404).indices.delete(index=name)


def run(command: list[str] | str, workspace) -> str:
    work, env = workspace
    done = subprocess.run(
        command, cwd=work, env=env, shell=isinstance(command, str), capture_output=True, text=True
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_shell_examples_run(workspace, es):
    commands = shell_commands(code_block("bash", "xlir es start"))
    assert [c.split()[1] for c in commands] == [
        "es",
        "index",
        "search",
        "eval",
        "demo",
        "model",
        "model",
        "model",
    ]
    outputs = [run(command, workspace) for command in commands]
    started, indexed, searched, evaluated, demo = outputs[:5]
    assert "source_model: " in outputs[-1] and "forced" in outputs[-1]  # xlir model info
    assert "already running" in started  # the node the node file names: no second one
    assert "failed 0" in indexed
    assert {line.split()[2] for line in searched.splitlines()[1:]} <= {"en", "es"}
    assert "| **mean** |" in evaluated
    assert "answers found in the top 10" in demo
    assert es.count(index="docs")["count"] > 0


def test_python_api_example_runs(workspace):
    example = code_block("python", "connect(EsSettings.from_env())")
    check = (
        "\nassert report.failed == 0 and report.indexed + report.skipped > 0, report.summary()"
        "\nassert hits and {hit.lang for hit in hits} <= {'en', 'es'}, hits"
        "\nprint(es.transport.node_pool.get().base_url)"
    )
    (workspace[0] / "example.py").write_text(example + check)
    out = run([".venv/bin/python", "example.py"], workspace)
    node = json.loads((Path(workspace[1]["XLIR_CACHE"]) / "es-node.json").read_text())
    assert out.strip() == node["url"]  # found through the node file alone


@pytest.mark.opensearch
def test_opensearch_shell_examples_run(workspace, opensearch_settings, opensearch):
    """The OpenSearch block finds the tests' node through `os-node.json`, as a user's shell
    finds the one `xlir os start` left running."""
    work, env = workspace
    info = NodeInfo(opensearch_settings.url, "", "", os.getpid(), str(work), OS_VERSION)
    info.engine = "opensearch"
    info.save(Path(env["XLIR_CACHE"]) / "os-node.json")
    commands = shell_commands(code_block("bash", "xlir os start"))
    assert [c.split()[1] for c in commands] == ["os", "index", "search", "eval", "os"]
    try:
        started, indexed, searched, evaluated, status = [run(c, workspace) for c in commands]
    finally:
        delete_index(opensearch, "docs")
    assert "already running" in started and "failed 0" in indexed
    assert {line.split()[2] for line in searched.splitlines()[1:]} <= {"en", "es"}
    assert "| **mean** |" in evaluated and "status green" in status
