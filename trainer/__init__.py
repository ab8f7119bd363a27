"""Hybrid-batch contrastive fine-tuning of multilingual encoders (X-X, X-Y, hybrid).

Modules by role: `config` (TrainConfig and the CLI flags), `data` (loaders -> example table),
`samplers` (the batch sampler, no torch), `losses` (InfoNCE), `models` (pooling encoder),
`train` (the loop, DDP under torchrun). Run `python -m trainer --help`.
"""

from trainer.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(cfg: TrainConfig) -> dict:
    """Run a training (see `trainer.train.train`)."""
    from trainer.train import train as _train

    return _train(cfg)
