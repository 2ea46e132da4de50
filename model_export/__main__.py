"""``python -m model_export train`` then ``python -m model_export export`` (``just export-model``).

``train`` fits the demo U-Net on synthetic phantoms and writes a checkpoint;
``export`` writes ``model.onnx``, ``model.pt`` and ``manifest.json`` into the models directory
after checking that both files agree and measuring the model on the held-out phantoms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model_export.docs import update_docs
from model_export.export import MODEL_ID, ParityError, export_model
from model_export.training import TrainingConfig, describe, load, train

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = PACKAGE_DIR / "build" / f"{MODEL_ID}.ckpt"
DEFAULT_OUT = PACKAGE_DIR / "models" / MODEL_ID


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = TrainingConfig()
    fit = commands.add_parser("train", help="train the demo model on synthetic phantoms")
    fit.add_argument("--steps", type=int, default=defaults.steps)
    fit.add_argument("--batch-size", type=int, default=defaults.batch_size)
    fit.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    fit.add_argument("--seed", type=int, default=defaults.seed)
    fit.add_argument("--threads", type=int, default=defaults.threads)
    fit.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    out = commands.add_parser("export", help="export ONNX + TorchScript + manifest")
    out.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    out.add_argument("--out", type=Path, default=DEFAULT_OUT)
    out.add_argument("--cases", type=int, default=None, help="held-out phantoms (0: skip)")
    out.add_argument("--docs", type=Path, default=None, help="docs/models.md to update")
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    return _export(args)


def _train(args: argparse.Namespace) -> int:
    config = TrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
    )
    started = time.perf_counter()
    recent: list[float] = []

    def progress(step: int, loss: float) -> None:
        recent.append(loss)
        if step % 50 == 0 or step == config.steps:
            mean = sum(recent) / len(recent)
            recent.clear()
            elapsed = time.perf_counter() - started
            print(f"step {step}/{config.steps}  loss {mean:.3f}  {elapsed:.0f} s", flush=True)

    run = train(config, progress=progress)
    run.save(args.checkpoint)
    print(f"trained: {describe(run)}\ncheckpoint: {args.checkpoint}")
    return 0


def _export(args: argparse.Namespace) -> int:
    if not args.checkpoint.exists():
        print(f"no checkpoint at {args.checkpoint}: run `python -m model_export train` first")
        return 2
    run = load(args.checkpoint)
    try:
        report = export_model(run, args.out, evaluation_cases=args.cases)
    except ParityError as err:
        print(f"export refused: {err}", file=sys.stderr)
        return 1
    print(f"exported {report.manifest.id} {report.manifest.version} to {report.directory}")
    for name, value in report.manifest.metrics.items():
        print(f"  {name}: {value:g}")
    if args.docs is not None:
        updated = update_docs(args.docs, report)
        print(f"{args.docs}: {'updated' if updated else 'has no results markers, left as is'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
