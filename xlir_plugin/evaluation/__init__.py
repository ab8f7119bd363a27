"""XQuAD-R / MLQA-R evaluation as PAPER.md measures it: Mono, Cross, Multi mAP and bias."""

from .data import LareqaData, first_questions, load_lareqa
from .result import EvalResult
from .run import evaluate, evaluate_vectors

__all__ = [
    "EvalResult",
    "LareqaData",
    "evaluate",
    "evaluate_vectors",
    "first_questions",
    "load_lareqa",
]
