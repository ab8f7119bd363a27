"""XQuAD-R / MLQA-R evaluation as PAPER.md measures it: Mono, Cross, Multi mAP and bias."""

from .data import LareqaData, load_lareqa
from .run import EvalResult, evaluate

__all__ = ["EvalResult", "LareqaData", "evaluate", "load_lareqa"]
