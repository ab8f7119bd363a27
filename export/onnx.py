"""`python -m export.onnx`: a trained encoder -> the quantized ONNX directory xlir_plugin serves.

    python -m export.onnx --model DIR --output DIR [--quantize int8|fp16|none] [--opset N]
        [--max-length 512] [--probe FILE] [--projection HEAD.npz] [--force]

`--model default` is the bundled multilingual-e5-small with its shipped projection head,
`--model e5-small-base` the same encoder without it (both built without torch).

Exit codes: 0 done, 1 parity check failed (nothing written), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from export.quantize import QUANTIZATIONS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like our own input errors
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m export.onnx", description=__doc__.split("\n")[0])
    p.add_argument(
        "--model",
        required=True,
        help="transformers encoder directory, hub id, 'default' or 'e5-small-base'",
    )
    p.add_argument("--output", required=True, help="directory to write the ONNX model into")
    p.add_argument("--quantize", default="int8", help=f"{' | '.join(QUANTIZATIONS)} (int8)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (optimum's default)")
    p.add_argument("--max-length", type=int, default=None, help="max tokens (model setting)")
    p.add_argument("--probe", default=None, help="parity probe: text lines or JSONL (XQuAD-R)")
    p.add_argument("--force", action="store_true", help="keep the export if parity fails")
    p.add_argument("--min-cosine", type=float, default=None, help="parity: min cosine")
    p.add_argument("--mean-cosine", type=float, default=None, help="parity: mean cosine")
    p.add_argument("--min-top1", type=float, default=None, help="parity: min top-1 agreement")
    p.add_argument(
        "--pooling",
        choices=("graph", "numpy"),
        default="graph",
        help="pool + normalize inside the ONNX graph (default) or in the serving encoder",
    )
    p.add_argument(
        "--projection",
        default=None,
        help="a projection head (.npz, `python -m trainer.projection`) written after pooling "
        "(default: the shipped head for --model default, none otherwise)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from export.errors import ParityError
    from export.parity import Thresholds
    from export.pipeline import export_model
    from xlir_plugin.errors import XlirError
    from xlir_plugin.projection import load_projection

    with warnings.catch_warnings():
        try:
            _quiet_libraries()
            thresholds = None
            if args.quantize in QUANTIZATIONS:
                thresholds = Thresholds.default(args.quantize)
                if args.min_cosine is not None:
                    thresholds.min_cosine = args.min_cosine
                if args.mean_cosine is not None:
                    thresholds.mean_cosine = args.mean_cosine
                if args.min_top1 is not None:
                    thresholds.top1_agreement = args.min_top1
            result = export_model(
                args.model,
                args.output,
                quantize=args.quantize,
                opset=args.opset,
                max_length=args.max_length,
                probe=args.probe,
                force=args.force,
                thresholds=thresholds,
                pooling_in_graph=args.pooling == "graph",
                progress=not args.quiet,
                projection=load_projection(args.projection) if args.projection else None,
            )
        except ParityError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except XlirError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    m = result.manifest
    p = m.parity
    sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in m.file_sizes.items() if ".onnx" in k)
    print(
        f"{result.output}: {m.source_model} {m.quantization} dim {m.dim} opset {m.opset}; {sizes}; "
        f"parity on {p['probe']}: cosine min {p['cosine_min']:.4f} mean {p['cosine_mean']:.4f}, "
        f"top-1 agreement {p['top1_agreement']:.3f}; {result.seconds:.0f} s"
    )
    if result.failures:
        print(f"warning: kept despite --force: {'; '.join(result.failures)}", file=sys.stderr)
    return 0


def _quiet_libraries() -> None:
    """optimum/torch.onnx print many tracer warnings that say nothing about the result
    (call inside warnings.catch_warnings())."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("optimum", "transformers", "torch", "onnxruntime", "huggingface_hub", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
