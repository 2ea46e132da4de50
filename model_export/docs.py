"""The generated part of docs/models.md: what the last export measured."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from model_export.evaluation import DETECTION_OVERLAP, HELD_OUT_SHAPE
from model_export.export import MIN_LESION_SIZE_VOXELS, PARITY_TOLERANCE, THRESHOLD, ExportReport

BEGIN = "<!-- model-export: results begin (written by python -m model_export export) -->"
END = "<!-- model-export: results end -->"


def results_markdown(report: ExportReport) -> str:
    """A table of the held-out results, parity and sizes of ``report``."""
    manifest = report.manifest
    metrics = manifest.metrics
    sizes = {name: (report.directory / name).stat().st_size for name in manifest.files.values()}
    lines = [
        f"Model `{manifest.id}` {manifest.version}: "
        f"{int(metrics.get('parameters', 0)):,} parameters, "
        + ", ".join(f"`{name}` {size / 1e6:.2f} MB" for name, size in sizes.items())
        + ".",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    evaluation = report.evaluation
    if evaluation is not None:
        lines += [
            f"| held-out cases | {evaluation.cases} phantoms of "
            f"{' x '.join(map(str, HELD_OUT_SHAPE))} voxels (z, y, x) at "
            f"{' x '.join(map(str, manifest.input_spacing_mm))} mm, {evaluation.lesions} lesions |",
            f"| Dice (mean per case) | {evaluation.dice:.3f} |",
            f"| detection recall | {evaluation.recall:.3f} "
            f"({evaluation.detected}/{evaluation.lesions}) |",
            "| recall by shape | "
            + ", ".join(f"{kind} {value:.2f}" for kind, value in evaluation.recall_by_kind.items())
            + " |",
            "| recall by equivalent diameter | "
            + ", ".join(f"{size}: {value:.2f}" for size, value in evaluation.recall_by_size.items())
            + " |",
            f"| false positives per case | {evaluation.false_positives / evaluation.cases:.2f} |",
        ]
    lines += [
        f"| threshold, minimum lesion size | {THRESHOLD}, {MIN_LESION_SIZE_VOXELS} voxels |",
        f"| detection rule | >= {DETECTION_OVERLAP:.0%} of the lesion's voxels predicted |",
        f"| ONNX vs TorchScript, max abs probability difference | "
        f"{report.parity_max_abs_diff:.1e} (tolerance {PARITY_TOLERANCE:.0e}; logits "
        f"{report.parity_max_abs_logit_diff:.1e}) |",
        f"| training | {int(metrics.get('training_steps', 0))} steps in "
        f"{metrics.get('training_seconds', 0):.0f} s on the CPU "
        f"(one thread; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}) |",
    ]
    return "\n".join(lines)


def update_docs(path: Path, report: ExportReport) -> bool:
    """Replace the results between the markers of ``path``; ``False`` when it has none."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{results_markdown(report)}\n{END}{tail}")
    return True
