"""Side-by-side throughput benchmark: Flair's PyTorch ``predict`` against each exported backend.

All backends run in one process on the same sentences, passes interleaved (PyTorch, ONNX, PyTorch,
ONNX, ...) so that the machine's noise hits each alike; the median pass is reported. Tags of every
backend are compared with PyTorch's on all benchmark sentences.
"""

from __future__ import annotations

import logging
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from exporter.config import Backend, ExportConfig, OnnxOptions, ParityConfig, RuntimeOptions, TorchScriptOptions
from exporter.errors import ConfigError

__all__ = ["BenchConfig", "BenchResult", "load_sentences", "run_benchmark"]

log = logging.getLogger(__name__)


#: The exported variants the benchmark knows, by name.
VARIANTS: dict[str, dict[str, Any]] = {
    "onnx": {"backend": Backend.ONNX},
    "onnx-optimized": {"backend": Backend.ONNX, "onnx": OnnxOptions(optimize="all")},
    "onnx-int8": {"backend": Backend.ONNX, "onnx": OnnxOptions(quantize="int8", per_channel=True)},
    "onnx-int8-per-tensor": {"backend": Backend.ONNX, "onnx": OnnxOptions(quantize="int8", per_channel=False)},
    "onnx-optimized-int8": {"backend": Backend.ONNX, "onnx": OnnxOptions(optimize="all", quantize="int8")},
    "torchscript": {"backend": Backend.TORCHSCRIPT, "torchscript": TorchScriptOptions()},
}


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how."""

    model_path: Path
    conll: Path | None = None
    num_sentences: int = 384
    min_words: int = 8
    batch_size: int = 32
    threads: int = 2
    repeats: int = 3
    backends: tuple[str, ...] = ("onnx", "onnx-optimized", "onnx-int8", "torchscript")
    command: str = ""

    def __post_init__(self) -> None:
        for name in ("num_sentences", "batch_size", "threads", "repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for backend in self.backends:
            if backend not in VARIANTS:
                raise ConfigError(f"Unknown benchmark backend {backend!r}; choose from {', '.join(VARIANTS)}.")


@dataclass
class BenchResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""


def load_sentences(config: BenchConfig) -> tuple[list[str], str]:
    """The benchmark sentences and a description of where they come from."""
    if config.conll:
        from exporter.corpus import read_conll

        texts = []
        for sentence in read_conll(config.conll):
            if len(sentence) >= config.min_words:
                texts.append(" ".join(w for w, _ in sentence))
            if len(texts) >= config.num_sentences:
                break
        return (
            texts,
            f"the first {len(texts)} sentences of at least {config.min_words} words of `{config.conll.name}` ({config.conll.parent.name})",
        )
    from exporter.corpus import generate_sentences

    texts = generate_sentences(config.num_sentences, seed=11, long_every=0)
    return texts, f"{len(texts)} generated sentences"


def _spans(model: Any, sentences: list[Any]) -> list[list[tuple]]:
    from exporter.parity import entity_spans

    return [entity_spans(s, model.label_type) for s in sentences]


def _timed_pass(model: Any, texts: list[str], batch_size: int) -> tuple[float, list[Any]]:
    from flair.data import Sentence

    sentences = [Sentence(t) for t in texts]
    started = time.perf_counter()
    model.predict(sentences, mini_batch_size=batch_size)
    return time.perf_counter() - started, sentences


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu


def run_benchmark(config: BenchConfig, output: Path | None = None, log_to_mlflow: bool = True) -> BenchResult:
    """Run the benchmark; write the Markdown report to ``output``; log metrics and a chart to MLflow."""
    import torch
    from tqdm import tqdm

    from exporter.bundle import load_bundle, save_bundle
    from exporter.manifest import library_versions
    from exporter.parity import span_f1
    from mlflow_flavor.models import load_flair_model

    torch.set_num_threads(config.threads)
    texts, source = load_sentences(config)
    if not texts:
        raise ConfigError("No benchmark sentences: the CoNLL file has none of the minimum length.")
    models: dict[str, Any] = {"flair-pytorch": load_flair_model(config.model_path)}
    load_times: dict[str, float] = {"flair-pytorch": 0.0}
    sizes: dict[str, int] = {"flair-pytorch": config.model_path.stat().st_size}
    runtime = RuntimeOptions(intra_op_num_threads=config.threads, inter_op_num_threads=1)
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-bench-") as work:
        for backend in config.backends:
            export_config = ExportConfig(**VARIANTS[backend], runtime=runtime, parity=ParityConfig(enabled=False))
            info = save_bundle(models["flair-pytorch"], Path(work) / backend, export_config)
            started = time.perf_counter()
            models[backend] = load_bundle(info.path)
            load_times[backend] = time.perf_counter() - started
            sizes[backend] = sum(e["size"] for e in info.manifest["files"].values())

        # warm-up on a slice, then interleaved timed passes
        for model in models.values():
            _timed_pass(model, texts[: config.batch_size * 2], config.batch_size)
        times: dict[str, list[float]] = {name: [] for name in models}
        spans: dict[str, list] = {}
        with tqdm(total=config.repeats * len(models), desc="benchmark passes", unit="pass") as bar:
            for _ in range(config.repeats):
                for name, model in models.items():
                    elapsed, sentences = _timed_pass(model, texts, config.batch_size)
                    times[name].append(elapsed)
                    spans.setdefault(name, _spans(model, sentences))
                    bar.update()

    base = statistics.median(times["flair-pytorch"])
    rows = []
    for name in models:
        median = statistics.median(times[name])
        identical = sum(a == b for a, b in zip(spans[name], spans["flair-pytorch"]))
        f1 = span_f1([set(x) for x in spans["flair-pytorch"]], [set(x) for x in spans[name]])
        rows.append(
            {
                "backend": name,
                "sentences_per_s": len(texts) / median,
                "ratio": base / median,
                "median_s": median,
                "passes_s": [round(t, 3) for t in times[name]],
                "identical": identical,
                "entity_f1": f1,
                "sentences": len(texts),
                "load_s": load_times[name],
                "size_mb": sizes[name] / 1e6,
            }
        )
    versions = library_versions()
    lines = [
        "Measured by `flair-mlflow bench`; every ratio compares backends measured "
        "side by side in one run, passes interleaved, median of the passes.",
        "",
        f"Command: `{config.command or 'flair-mlflow bench'}`",
        "",
        "## End-to-end `predict` throughput",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_machine()}, {config.threads} threads (torch and ONNX Runtime intra-op)",
        f"- Model: `{config.model_path.name}`",
        f"- Sentences: {source}; batch size {config.batch_size}; {config.repeats} timed passes per backend",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "",
        "| backend | sentences/s | vs Flair PyTorch | identical entities | entity F1 vs PyTorch | load (s) | size (MB) | passes (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['sentences_per_s']:.1f} | {r['ratio']:.2f}x | {r['identical']}/{r['sentences']} | {r['entity_f1']:.4f} "
            f"| {r['load_s']:.2f} | {r['size_mb']:.1f} | {', '.join(map(str, r['passes_s']))} |"
        )
    result = BenchResult(rows=rows, markdown="\n".join(lines) + "\n")
    if output:
        write_report(output, result.markdown)
        log.info("Benchmark written to %s", output)
    if log_to_mlflow:
        _log_to_mlflow(config, result)
    return result


START_MARK = "<!-- flair-mlflow bench: start -->"
END_MARK = "<!-- flair-mlflow bench: end -->"


def write_report(output: Path, markdown: str) -> None:
    """Replace the generated block of ``output`` (between the bench markers), keeping everything else."""
    block = f"{START_MARK}\n{markdown}{END_MARK}\n"
    text = output.read_text(encoding="utf-8") if output.exists() else "# Benchmarks\n\n"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")


def _log_to_mlflow(config: BenchConfig, result: BenchResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    with mlflow.start_run(run_name="benchmark", nested=bool(mlflow.active_run())):
        mlflow.log_params(
            {
                "batch_size": config.batch_size,
                "threads": config.threads,
                "sentences": config.num_sentences,
                "repeats": config.repeats,
                "model": config.model_path.name,
            }
        )
        for r in result.rows:
            key = r["backend"].replace("-", "_")
            mlflow.log_metrics(
                {
                    f"{key}_sentences_per_s": r["sentences_per_s"],
                    f"{key}_ratio": r["ratio"],
                    f"{key}_identical_share": r["identical"] / r["sentences"],
                }
            )
        fig, ax = plt.subplots(figsize=(6, 3.5))
        names = [r["backend"] for r in result.rows]
        values = [r["sentences_per_s"] for r in result.rows]
        bars = ax.bar(names, values, color=["#888888"] + ["#1f77b4"] * (len(names) - 1))
        for bar, r in zip(bars, result.rows):
            ax.annotate(
                f"{r['ratio']:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
            )
        ax.set_ylabel("sentences / s")
        ax.set_title(f"predict throughput, batch {config.batch_size}, {config.threads} threads")
        fig.tight_layout()
        mlflow.log_figure(fig, "benchmark.png")
        plt.close(fig)
        mlflow.log_text(result.markdown, "BENCHMARKS.md")
