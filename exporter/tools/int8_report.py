"""Compare the int8 recipes on one tagger and a labeled CoNLL set, side by side in one run.

For Flair's PyTorch model, the ONNX fp32 export and every recipe of ``onnx_quantize.RECIPES``:
end-to-end ``predict`` throughput at batch 1 and 32 (and the ratio to Flair's PyTorch ``predict``), entity
F1 against the original's own output (agreement), gold F1, the share of sentences whose entities are the
same alone (batch 1) as within batches of 32 (batch independence), and the bundle's size. The default int8
recipe is chosen from this table (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.backends.onnx_quantize import RECIPES
from exporter.bundle.load import load_bundle
from exporter.bundle.save import save_bundle
from exporter.config import SEQUENCE_TAGGING, ExportConfig, OnnxOptions, ParityConfig
from exporter.format.modelfile import load_flair_model
from exporter.quality.metrics import load_examples, score
from exporter.quality.parity import token_spans

__all__ = ["RecipeReportConfig", "compare_recipes", "log_recipes_to_mlflow", "measured_record", "recipe_markdown"]

log = logging.getLogger(__name__)

ORIGINAL = "flair-pytorch"
FP32 = "onnx-fp32"


@dataclass(frozen=True)
class RecipeReportConfig:
    """What to compare and on how much data.

    Attributes:
        model_path: a Flair ``SequenceTagger`` ``.pt`` file.
        conll: labeled sentences (two-column CoNLL) for agreement, gold F1 and batch independence.
        sentences: how many of them (the first ones).
        speed_sentences: how many of them are timed (at batch 1 and 32).
        recipes: the int8 recipes to compare (default: all).
        threads: torch and ONNX Runtime threads (0: the libraries decide).
        optimize: ONNX Runtime's transformer optimizer level for every export (None: not optimized).
        call_rows: each export is measured once per value, loaded with ``max_call_rows`` set to it (0: the
            buckets decide; 1: every sentence alone in its encoder call).
    """

    model_path: Path
    conll: Path
    sentences: int = 1500
    speed_sentences: int = 384
    recipes: tuple[str, ...] = ()
    threads: int = 0
    optimize: str | None = None
    call_rows: tuple[int, ...] = (0,)


def _spans(model: Any, tokens: Sequence[Sequence[str]], batch_size: int) -> list[frozenset]:
    """Each sentence's predicted entities as token spans (comparable with gold spans)."""
    from flair.data import Sentence

    sentences = [Sentence(list(t)) for t in tokens]
    model.predict(sentences, mini_batch_size=batch_size)
    return [frozenset(token_spans(s, model.label_type)) for s in sentences]


def _throughput(model: Any, tokens: Sequence[Sequence[str]], batch_size: int) -> float:
    from flair.data import Sentence

    sentences = [Sentence(list(t)) for t in tokens]
    model.predict(sentences[: min(len(sentences), 32)], mini_batch_size=batch_size)  # warm-up
    sentences = [Sentence(list(t)) for t in tokens]
    started = time.perf_counter()
    model.predict(sentences, mini_batch_size=batch_size)
    return len(sentences) / (time.perf_counter() - started)


def _row(name: str, model: Any, data: Any, reference: list[frozenset], config: RecipeReportConfig) -> dict[str, Any]:
    tokens = data.tokens
    batched = _spans(model, tokens, 32)
    alone = _spans(model, tokens, 1)
    speed = tokens[: config.speed_sentences]
    return {
        "variant": name,
        "texts_per_s_b32": _throughput(model, speed, 32),
        "texts_per_s_b1": _throughput(model, speed, 1),
        "agreement_f1": score(reference, batched, SEQUENCE_TAGGING)["f1_micro"],
        "gold_f1": score(data.gold, batched, SEQUENCE_TAGGING)["f1_micro"],
        "batch_independent_share": sum(a == b for a, b in zip(alone, batched)) / len(tokens),
    }


def _variants(config: RecipeReportConfig) -> dict[str, OnnxOptions]:
    recipes = config.recipes or tuple(RECIPES)
    variants = {FP32: OnnxOptions(optimize=config.optimize)}
    variants.update({recipe: OnnxOptions(optimize=config.optimize, quantize=recipe) for recipe in recipes})
    return variants


def _runtimes(config: RecipeReportConfig) -> dict[str, dict[str, int]]:
    """Name suffix -> runtime options, one per ``call_rows`` value."""
    runtimes = {}
    for rows in config.call_rows:
        runtime = {"intra_op_num_threads": config.threads} if config.threads else {}
        runtime["max_call_rows"] = rows
        runtimes["" if rows == 0 else f", {rows} row{'s' if rows > 1 else ''}/call"] = runtime
    return runtimes


def compare_recipes(config: RecipeReportConfig, progress: Callable[[str], None] = log.info) -> list[dict[str, Any]]:
    """One row per variant (Flair PyTorch first), measured in this process, one after the other."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    data = load_examples(config.conll, SEQUENCE_TAGGING, limit=config.sentences)
    original = load_flair_model(config.model_path)
    reference = _spans(original, data.tokens, 32)
    rows = [_row(ORIGINAL, original, data, reference, config)]
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-int8-") as work:
        for name, options in _variants(config).items():
            progress(f"{name}: export")
            export = ExportConfig(onnx=options, parity=ParityConfig(enabled=False))
            info = save_bundle(original, Path(work) / name, export)
            size_mb = sum(e["size"] for e in info.manifest["files"].values()) / 1e6
            for suffix, runtime in _runtimes(config).items():
                progress(f"{name}{suffix}: measure")
                row = _row(name + suffix, load_bundle(info.path, runtime=runtime), data, reference, config)
                rows.append({**row, "bundle_mb": size_mb})
    base_b32, base_b1 = rows[0]["texts_per_s_b32"], rows[0]["texts_per_s_b1"]
    for row in rows:
        row["ratio_b32"], row["ratio_b1"] = row["texts_per_s_b32"] / base_b32, row["texts_per_s_b1"] / base_b1
    return rows


def recipe_markdown(config: RecipeReportConfig, rows: Sequence[dict[str, Any]]) -> str:
    """The comparison as a Markdown table."""
    lines = [
        f"int8 recipes on `{Path(config.model_path).name}`: {config.sentences} sentences of `{config.conll}` "
        f"(speed on the first {config.speed_sentences}), one process, one run; ratios to Flair's PyTorch `predict`.",
        "",
        "| variant | batch 32 | batch 1 | agreement F1 | gold F1 | same alone as in batch | bundle MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        size = f"{r['bundle_mb']:.0f}" if "bundle_mb" in r else ""
        lines.append(
            f"| {r['variant']} | {r['texts_per_s_b32']:.0f}/s ({r['ratio_b32']:.2f}x) | {r['texts_per_s_b1']:.0f}/s "
            f"({r['ratio_b1']:.2f}x) | {r['agreement_f1']:.4f} | {r['gold_f1']:.4f} | "
            f"{100 * r['batch_independent_share']:.1f} % | {size} |"
        )
    return "\n".join(lines) + "\n"


def _trade_off_chart(rows: Sequence[dict[str, Any]]) -> Any:
    """Speed (batch 32, x Flair PyTorch) against agreement with the original, one point per variant; hollow
    points are variants whose entities change with the batch for some sentences."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        independent = r["batch_independent_share"] >= 0.995
        ax.scatter(r["ratio_b32"], r["agreement_f1"], s=60, edgecolors="C0", facecolors="C0" if independent else "none")
        ax.annotate(
            r["variant"], (r["ratio_b32"], r["agreement_f1"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    ax.axhline(0.98, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("end-to-end throughput at batch 32, x Flair PyTorch predict")
    ax.set_ylabel("entity F1 against the original's output")
    ax.set_title("int8 recipes: speed and fidelity (filled: same entities alone as in a batch, >= 99.5 %)")
    fig.tight_layout()
    return fig


def log_recipes_to_mlflow(config: RecipeReportConfig, rows: Sequence[dict[str, Any]], markdown: str) -> str:
    """Log the comparison as one MLflow run (parameters, one metric per variant and column, the chart and
    the table); returns the run id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    with mlflow.start_run(run_name="int8-recipes", nested=bool(mlflow.active_run())) as run:
        mlflow.log_params(
            {
                "model": Path(config.model_path).name,
                "conll": Path(config.conll).name,
                "sentences": config.sentences,
                "speed_sentences": config.speed_sentences,
                "threads": config.threads,
                "optimize": config.optimize,
                "call_rows": ",".join(map(str, config.call_rows)),
            }
        )
        for r in rows:
            key = re.sub(r"[^0-9A-Za-z]+", "_", r["variant"]).strip("_")
            mlflow.log_metrics(
                {
                    f"{key}_{column}": float(r[column])
                    for column in ("ratio_b32", "ratio_b1", "agreement_f1", "gold_f1", "batch_independent_share")
                }
            )
        fig = _trade_off_chart(rows)
        mlflow.log_figure(fig, "int8_recipes.png")
        plt.close(fig)
        mlflow.log_text(markdown, "int8_recipes.md")
        return run.info.run_id


def measured_record(config: RecipeReportConfig, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The measurements a failed int8 gate quotes (``exporter/quality/data/int8_measured.json``, read by
    ``exporter.quality.advice``): each recipe's agreement and speed at batch 32, and fp32's speed, from the rows
    of :func:`compare_recipes` run with the default call shapes."""
    by_name = {row["variant"]: row for row in rows}
    return {
        "measured_on": f"{config.model_path.name} on {config.sentences} sentences of {Path(config.conll).name} "
        "(flair-mlflow int8-report)",
        "fp32": {"speed_b32": round(by_name[FP32]["ratio_b32"], 2)},
        "recipes": {
            name: {"agreement_f1": round(row["agreement_f1"], 4), "speed_b32": round(row["ratio_b32"], 2)}
            for name, row in by_name.items()
            if name in RECIPES
        },
    }
