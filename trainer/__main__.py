"""`python -m trainer --base MODEL --data DIR --batching hybrid --output runs/hybrid`.

Multi-GPU (or multi-process CPU): `torchrun --nproc_per_node N -m trainer ...`.
"""

from __future__ import annotations

import json
import sys

from trainer.config import parse_args


def main(argv=None) -> int:
    cfg = parse_args(argv)
    from trainer.train import train

    try:
        summary = train(cfg)
    except (FileNotFoundError, ValueError) as exc:  # bad data or settings: one line, exit 2
        print(f"python -m trainer: error: {exc}", file=sys.stderr)
        return 2
    if summary.get("world_size", 1) == 1 or _rank() == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "data"}, indent=2))
    return 0


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


if __name__ == "__main__":
    sys.exit(main())
