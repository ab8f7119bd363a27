"""TrainConfig: every knob of a run; the CLI flags are generated from its fields."""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

CONFIG_FILE = "train_config.json"


def option(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    # data
    base: str = option("default", "base model: a local directory, a hub id, or 'default'")
    data: str = option("", "a directory of SQuAD {lang}.json files, or JSONL file(s)/directory")
    data_format: str = option("auto", "data format", ["auto", "squad", "jsonl"])
    langs: str = option("", "comma-separated languages to keep (default: all)")
    passage_unit: str = option("paragraph", "passage unit", ["paragraph", "sentence"])
    passage_context: bool = option(True, "sentence passages: the paragraph as a second segment")
    val_fraction: float = option(0.05, "share of parallel-id groups held out for validation")
    output: str = option("runs/xlir", "output directory")
    # batching
    batching: str = option("hybrid", "batch type: X-X, X-Y or hybrid", ["xx", "xy", "hybrid"])
    alpha: float = option(0.5, "hybrid: probability of an X-X batch")
    lang_sampling: str = option("uniform", "X-X language draw", ["uniform", "size"])
    batch_size: int = option(32, "pairs per batch (per process)")
    # model and loss
    pooling: str = option("auto", "pooling (auto: the base model's setting, else mean)",
                      ["auto", "mean", "cls"])  # fmt: skip
    normalize: bool = option(True, "L2-normalise embeddings")
    prefixes: bool = option(True, "prepend the query/passage prefixes")
    query_prefix: str = option("query: ", "query prefix")
    passage_prefix: str = option("passage: ", "passage prefix")
    max_query_length: int = option(64, "max query tokens")
    max_passage_length: int = option(256, "max passage tokens")
    temperature: float = option(0.05, "softmax temperature over cosine scores")
    symmetric: bool = option(False, "add the passage-to-query InfoNCE term")
    # cross-lingual distillation toward the frozen base model (trainer.parallel)
    distill_data: str = option("", "parallel sentences, PATH[:WEIGHT],... ('qa': the data's "
                           "own question translations); empty: no distillation")  # fmt: skip
    distill_weight: float = option(10.0, "weight of the distillation loss")
    distill_batch_size: int = option(32, "parallel pairs per step")
    distill_query_share: float = option(0.5, "share of pairs embedded with the query prefix")
    # optimisation
    max_steps: int = option(1000, "optimizer steps")
    lr: float = option(3e-5, "peak learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup_ratio: float = option(0.1, "warmup steps as a share of max steps")
    warmup_steps: int = option(-1, "warmup steps (overrides --warmup-ratio when >= 0)")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: off)")
    precision: str = option("auto", "auto: bf16 (or fp16) on GPU, fp32 on CPU",
                        ["auto", "fp32", "bf16", "fp16"])  # fmt: skip
    gradient_checkpointing: bool = option(False, "recompute activations to save memory")
    freeze_embeddings: bool = option(False, "freeze the word embeddings")
    # evaluation, checkpoints, logging
    eval_steps: int = option(100, "validation loss every N steps (0: never)")
    eval_batches: int = option(20, "validation batches per evaluation")
    patience: int = option(5, "stop after N evaluations without improvement (0: never)")
    save_steps: int = option(500, "checkpoint every N steps (0: only at the end)")
    save_total_limit: int = option(2, "checkpoints kept")
    resume: str = option("", "resume from a checkpoint directory, or 'auto' (latest in output)")
    seed: int = option(42, "random seed")
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:N")
    num_threads: int = option(0, "CPU threads per process (0: cores / local processes)")
    progress: bool = option(True, "tqdm progress bar")

    def __post_init__(self):
        checks = {f.name: f.metadata.get("choices") for f in fields(self)}
        for name, choices in checks.items():
            if choices and getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, not {getattr(self, name)!r}")
        if not 0 <= self.alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")
        if self.batch_size < 2:
            raise ValueError("batch size must be >= 2 (in-batch negatives)")

    @property
    def q_prefix(self) -> str:
        return self.query_prefix if self.prefixes else ""

    @property
    def p_prefix(self) -> str:
        return self.passage_prefix if self.prefixes else ""

    def num_warmup(self) -> int:
        return (
            self.warmup_steps if self.warmup_steps >= 0 else int(self.warmup_ratio * self.max_steps)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TrainConfig:
        data = json.loads((Path(directory) / CONFIG_FILE).read_text())
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


ALIASES = {"eval_steps": ["--eval-every"], "save_steps": ["--save-every"]}


class _Parser(argparse.ArgumentParser):
    """Errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(
    config=None,
    prog: str = "python -m trainer",
    description: str = "Hybrid-batch contrastive fine-tuning of a multilingual encoder "
    "(X-X, X-Y, hybrid).",
) -> argparse.ArgumentParser:
    """`--flag-name` per field of `config` (a dataclass; TrainConfig by default); bools get
    `--x/--no-x`."""
    parser = _Parser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in fields(config or TrainConfig):
        flags = ["--" + f.name.replace("_", "-"), *ALIASES.get(f.name, [])]
        default = f.default if f.default is not MISSING else None
        kw = {"default": default, "help": f.metadata.get("help", ""), "dest": f.name}
        if isinstance(default, bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        elif f.name == "resume":  # bare `--resume`: the latest checkpoint in the output dir
            parser.add_argument(*flags, nargs="?", const="auto", **kw)
        else:
            choices = f.metadata.get("choices")
            parser.add_argument(*flags, type=type(default), choices=choices, **kw)
    return parser


def parse_args(argv=None) -> TrainConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("--data is required")
    if not Path(args.data).exists():
        parser.error(f"--data {args.data}: no such file or directory")
    try:
        return TrainConfig(**vars(args))
    except ValueError as exc:
        parser.error(str(exc))
