"""Side-by-side benchmark: Flair's PyTorch ``predict``, Flair's own ``export_onnx``, and our backends.

All variants run in one process on the same sentences, timed passes interleaved (variant A, B, C, A, B,
C, ...) so that the machine's noise hits each alike; the median pass is reported. For each variant and
batch size: sentences/s, the ratio to Flair PyTorch, p50/p95 latency of one batch; plus load time,
bundle size, peak memory (each variant loaded and run in a subprocess of its own), agreement of the
entities with PyTorch's, and the encoder's effective GFLOP/s against a measured large matrix product.

Two reference rows separate the gains: ``pytorch-buckets`` (PyTorch's own encoder inside flair-mlflow's
path: length buckets, lean pooling and decoding) and the ``-unbucketed`` variants (the accelerated encoder
fed batches padded as Flair pads them).
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from exporter.backends.flair_onnx import apply_runtime, legacy_onnx_export
from exporter.backends.kinds import has_char_lms, has_one_transformer
from exporter.backends.tracing import HiddenStates
from exporter.bundle.load import load_bundle
from exporter.bundle.save import save_bundle
from exporter.config import (
    TEXT_CLASSIFICATION,
    TEXT_PAIR_CLASSIFICATION,
    Backend,
    ExportConfig,
    OnnxOptions,
    ParityConfig,
    RuntimeOptions,
    TorchScriptOptions,
    check_integer,
)
from exporter.errors import ConfigError
from exporter.format.manifest import library_versions
from exporter.format.modelfile import (
    PICKLE_NEEDS_OPT_IN,
    SUPPORTED_MODELS,
    ZERO_SHOT_MODELS,
    load_flair_model,
    model_embeddings,
    save_plain,
)
from exporter.format.tasks import is_multitask
from exporter.quality.parity import (
    all_predictions,
    data_point,
    is_pair_model,
    is_regressor,
    label_scores,
    max_score_diff,
    same_values,
    span_f1,
)
from exporter.runtime.buckets import Batching, canonical_groups, plan_groups, split_for_workers
from exporter.runtime.embeddings import build_accelerated_embeddings
from exporter.runtime.fastpath import FastViterbiDecoder
from exporter.runtime.invariance import fix_head_shapes
from exporter.runtime.settings import EmbeddingSettings, find_transformer_embeddings
from exporter.tools.report import benchmark_sentences, percentile, write_report
from exporter.tools.shapes import SHAPES, build_shape

__all__ = ["VARIANTS", "BenchConfig", "BenchResult", "load_sentences", "run_benchmark", "write_report"]

log = logging.getLogger(__name__)

BASELINE = "flair-pytorch"
ANCHOR = "flair-export-onnx"

#: PyTorch's own encoder inside flair-mlflow's path around it (length buckets, lean pooling and
#: decoding): tells how much of a backend's gain is that path and how much the backend itself.
PYTORCH_BUCKETS = "pytorch-buckets"

#: The exported variants the benchmark knows, by name (``runtime`` overrides the session settings).
VARIANTS: dict[str, dict[str, Any]] = {
    "onnx": {"backend": Backend.ONNX},
    "onnx-unbucketed": {"backend": Backend.ONNX, "runtime": {"length_buckets": False}},
    # the cheapest groups, whose padding depends on the batch (what batch_invariant costs)
    "onnx-variable": {"backend": Backend.ONNX, "runtime": {"batch_invariant": False}},
    "onnx-optimized": {"backend": Backend.ONNX, "onnx": OnnxOptions(optimize="all")},
    "onnx-int8": {"backend": Backend.ONNX, "onnx": OnnxOptions(quantize="int8", per_channel=True)},
    "onnx-int8-unbucketed": {
        "backend": Backend.ONNX,
        "onnx": OnnxOptions(quantize="int8", per_channel=True),
        "runtime": {"length_buckets": False},
    },
    # "threads": as many one-thread workers as the benchmark's threads (same cores, coarser parallelism)
    "onnx-workers": {"backend": Backend.ONNX, "runtime": {"intra_op_num_threads": 1, "encoder_workers": "threads"}},
    "onnx-int8-workers": {
        "backend": Backend.ONNX,
        "onnx": OnnxOptions(quantize="int8", per_channel=True),
        "runtime": {"intra_op_num_threads": 1, "encoder_workers": "threads"},
    },
    "onnx-int8-dynamic": {"backend": Backend.ONNX, "onnx": OnnxOptions(quantize="int8-dynamic")},
    "onnx-int8-per-tensor": {
        "backend": Backend.ONNX,
        "onnx": OnnxOptions(quantize="int8-dynamic", per_channel=False),
    },
    "onnx-optimized-int8": {"backend": Backend.ONNX, "onnx": OnnxOptions(optimize="all", quantize="int8")},
    "torchscript": {"backend": Backend.TORCHSCRIPT, "torchscript": TorchScriptOptions()},
    # PyTorch's dynamic int8 of Flair's character language models (their LSTMs), scripted
    "torchscript-int8": {"backend": Backend.TORCHSCRIPT, "torchscript": TorchScriptOptions(quantize="int8")},
    # Flair's own .pt; its transformer call in length buckets (nothing exported)
    "torch": {"backend": Backend.TORCH},
}
#: the variants that apply to a model whose character language models (FlairEmbeddings) the onnx backend exports
CHAR_LM_VARIANTS = (
    "onnx",
    "onnx-unbucketed",
    "onnx-int8",
    "onnx-int8-unbucketed",
    "onnx-int8-per-tensor",
    "torchscript",
    "torchscript-int8",
    "torch",
)
DEFAULT_VARIANTS = (
    "onnx",
    "onnx-variable",
    "onnx-unbucketed",
    "onnx-workers",
    "onnx-optimized",
    "onnx-int8",
    "onnx-int8-unbucketed",
    "onnx-int8-workers",
    "torchscript",
    "torch",
)


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how."""

    model_path: Path | None
    conll: Path | None = None
    num_sentences: int = 384
    min_words: int = 8
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    small_batch_sentences: int = 96
    threads: int = 2
    repeats: int = 3
    backends: tuple[str, ...] = DEFAULT_VARIANTS
    include_flair_onnx: bool = True
    include_pytorch_buckets: bool = True
    measure_memory: bool = True
    command: str = ""
    #: instead of ``model_path``: a random tagger of a published model's shape (``exporter.tools.shapes``)
    shape: str | None = None

    def __post_init__(self) -> None:
        if self.model_path is None and self.shape is None:
            raise ConfigError("Give the benchmark a model path or a model shape.", "model_path")
        if self.shape is not None and self.shape not in SHAPES:
            raise ConfigError(f"Unknown model shape {self.shape!r}; choose one of {', '.join(SHAPES)}.", "shape")
        for name in ("num_sentences", "threads", "repeats", "small_batch_sentences"):
            check_integer(name, getattr(self, name), 1)
        if not self.batch_sizes:
            raise ConfigError("batch_sizes must name at least one batch size.", "batch_sizes")
        for size in self.batch_sizes:
            check_integer("batch_sizes", size, 1)
        for backend in self.backends:
            if backend not in VARIANTS:
                raise ConfigError(f"Unknown benchmark backend {backend!r}; choose from {', '.join(VARIANTS)}.")


@dataclass
class BenchResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""
    #: the MLflow run the benchmark was logged to (None: not logged)
    run_id: str | None = None


def load_sentences(config: BenchConfig) -> tuple[list[str], str]:
    """The benchmark sentences and a description of where they come from."""
    return benchmark_sentences(config.conll, config.num_sentences, config.min_words)


def _batches(texts: list[Any], batch_size: int) -> list[list[Any]]:
    """Batches as Flair's ``predict`` forms them: sentences (or pairs) sorted by length, longest first."""
    from flair.data import Sentence

    def length(text: Any) -> int:
        return len(Sentence(text)) if isinstance(text, str) else sum(len(Sentence(t)) for t in text)

    ordered = sorted(texts, key=length, reverse=True)
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def _timed_pass(model: Any, batches: list[list[Any]], batch_size: int) -> tuple[list[float], list[Any]]:
    latencies, done = [], []
    for batch in batches:
        sentences = [data_point(model, t) for t in batch]
        started = time.perf_counter()
        model.predict(sentences, mini_batch_size=batch_size)
        latencies.append(time.perf_counter() - started)
        done.extend(sentences)
    return latencies, done


#: the instruction sets that decide int8 and bf16 speed (and ONNX Runtime's int8 LSTM fidelity), as /proc/cpuinfo
#: names them, with the names the docs use
_INT8_UNITS = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8"}
_BF16_UNITS = {"avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX-BF16"}


def _machine() -> str:
    """The CPU's name and the instruction sets a figure depends on: a figure is true of a machine."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        return cpu
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    int8 = ", ".join(name for flag, name in _INT8_UNITS.items() if flag in flags) or "no VNNI"
    bf16 = ", ".join(name for flag, name in _BF16_UNITS.items() if flag in flags) or "no bf16 units"
    return f"{cpu} ({vector}; int8: {int8}; bf16: {bf16})"


def _matmul_gflops(threads: int) -> float:
    """The machine's practical fp32 ceiling: a 2048³ matrix product."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(5))
    return 2 * 2048**3 / best / 1e9


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _encoder_dims(model: Any) -> tuple[int, int, int] | None:
    """Hidden size, layers and intermediate size of a BERT-style encoder, when the model says."""
    from transformers import AutoConfig

    # encoder calls of other shapes than one text each (pairs, every task, TARS: label and text, once per label)
    if is_pair_model(model) or is_multitask(model) or type(model).__name__ in ZERO_SHOT_MODELS:
        return None
    config = getattr(getattr(model_embeddings(model), "model", None), "config", None)
    hidden = getattr(config, "hidden_size", None)
    layers = getattr(config, "num_hidden_layers", None)
    intermediate = getattr(config, "intermediate_size", None)
    if intermediate is None and hasattr(config, "model_type"):
        intermediate = getattr(AutoConfig.for_model(config.model_type), "intermediate_size", 4 * (hidden or 0))
    return (hidden, layers, intermediate) if hidden and layers and intermediate else None


def _encoder_flops(dims: tuple[int, int, int], shapes: list[tuple[int, int]]) -> float:
    """Multiply-adds of a BERT-style encoder over batches of ``(rows, padded length)``, 2 FLOPs each."""
    hidden, layers, intermediate = dims
    return sum(
        2 * b * t * layers * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * b * layers * 2 * t * t * hidden
        for b, t in shapes
    )


def _encoder_shapes(model: Any, batches: list[list[str]], workers: int) -> dict[str, list[tuple[int, int]]]:
    """The encoder calls of one pass, as ``(rows, padded length)``: without any padding (``useful``), as
    Flair pads each batch (``flair``), as length buckets split them (``buckets``), and as ``workers``
    one-thread workers split those groups again (``workers``); ``canonical`` and ``canonical-workers`` the same
    for batch-invariant runs (every text at its canonical width)."""
    tokenizer = model_embeddings(model).tokenizer
    hidden = _encoder_dims(model)[0]
    limit = int(tokenizer.model_max_length)
    shapes: dict[str, list[tuple[int, int]]] = {
        "useful": [],
        "flair": [],
        "buckets": [],
        "workers": [],
        "canonical": [],
        "canonical-workers": [],
    }
    for batch in batches:
        encoded = tokenizer([t.split() for t in batch], is_split_into_words=True, truncation=True)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        shapes["useful"] += [(1, n) for n in lengths]
        shapes["flair"].append((len(lengths), max(lengths)))
        groups = plan_groups(lengths, hidden)
        shapes["buckets"] += [(len(g), lengths[g[0]]) for g in groups]
        shapes["workers"] += [(len(g), lengths[g[0]]) for g in split_for_workers(groups, workers)]
        canonical = canonical_groups(lengths, limit)
        shapes["canonical"] += [(len(g), w) for w, g in canonical]
        shapes["canonical-workers"] += [
            (len(part), w) for w, g in canonical for part in split_for_workers([g], workers)
        ]
    return shapes


def _pytorch_buckets(model_path: Path) -> Any:
    """Flair's PyTorch model with its encoder called through flair-mlflow's path (buckets, lean pooling)."""
    import torch

    model = load_flair_model(model_path)
    original = find_transformer_embeddings(model)
    settings = EmbeddingSettings.from_embeddings(original)
    wrapper = HiddenStates(original.model, settings.hidden_state_layers).eval()

    def encoder(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():  # as Flair's own predict
            return list(wrapper(input_ids, attention_mask))

    batching = Batching(invariant=True, width_limit=settings.model_max_length)  # as a bundle runs by default
    model.embeddings = build_accelerated_embeddings(settings, original.tokenizer, encoder, batching)
    if getattr(model, "use_crf", False) and hasattr(model, "viterbi_decoder"):
        model.viterbi_decoder = FastViterbiDecoder.replacing(model.viterbi_decoder)
    fix_head_shapes(model)
    return model.eval()


_MEMORY_PROBE = """
import json, sys, torch
torch.set_num_threads({threads})
from exporter.quality.parity import data_point
kind, path, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if kind == "flair":
    from exporter.format.modelfile import load_flair_model
    model = load_flair_model(path)
else:
    from exporter.bundle.load import load_bundle
    from exporter.format.manifest import read_manifest
    # a bundle this benchmark wrote itself: Flair's own ONNX / JIT models need their pickle
    model = load_bundle(path, allow_pickle=read_manifest(path)[0].get("model_pickle") == "needs-allow-pickle")
model.predict([data_point(model, t) for t in texts], mini_batch_size=32)
# VmHWM belongs to this process's own address space (ru_maxrss would carry the parent's peak over exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"peak_rss_mb": hwm / 1024}}))
"""


def _peak_memory(kind: str, path: Path, texts: list[str], threads: int) -> float | None:
    """Peak resident memory (MB) of a fresh process that loads the model and tags ``texts``."""
    code = _MEMORY_PROBE.format(threads=threads)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, kind, str(path), json.dumps(texts)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    except (subprocess.SubprocessError, ValueError, IndexError, KeyError) as e:
        log.warning("Peak memory probe failed for %s: %s", path, e)
        return None


def _flair_export_onnx(model_path: Path, work: Path, texts: list[str], runtime: RuntimeOptions) -> tuple[Any, int]:
    """The anchor: Flair's own ``export_onnx`` of the whole embedding forward (with ``dynamo=False``), its
    session rebuilt with the same settings as every other ONNX variant (threads, no spinning)."""
    from flair.data import Sentence

    model = load_flair_model(model_path)
    with legacy_onnx_export():
        model.embeddings = model.embeddings.export_onnx(
            str(work / "flair-export.onnx"),
            [Sentence(t) for t in texts[:4]],
            providers=["CPUExecutionProvider"],
            session_options={
                "intra_op_num_threads": runtime.intra_op_num_threads,
                "inter_op_num_threads": runtime.inter_op_num_threads,
            },
        )
    apply_runtime(model.embeddings, runtime)
    return model, sum(p.stat().st_size for p in work.glob("flair-export.onnx*"))


def _flair_onnx_bundle(model: Any, work: Path) -> Path | None:
    """The anchor as a bundle, so that its memory can be probed like the others."""
    try:
        return save_bundle(model, work / "flair-export-bundle", ExportConfig(parity=ParityConfig(enabled=False))).path
    except Exception as e:  # the anchor is informative; never let it stop the benchmark
        log.warning("Could not bundle the flair-export-onnx anchor for the memory probe: %s", e)
        return None


def run_benchmark(config: BenchConfig, output: Path | None = None, log_to_mlflow: bool = True) -> BenchResult:
    """Run the benchmark; write the Markdown report into ``output`` when given (its generated section replaced);
    with ``log_to_mlflow``, log metrics, a chart and the report as an MLflow run of the current tracking URI."""
    import torch

    torch.set_num_threads(config.threads)
    texts, source = load_sentences(config)
    if not texts:
        raise ConfigError("No benchmark sentences: the CoNLL file has none of the minimum length.")
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-bench-") as work_dir:
        if config.shape:
            path = Path(work_dir) / f"{config.shape}.pt"
            save_plain(build_shape(config.shape, texts), path)
            config = replace(config, model_path=path)
        lineup = _line_up(config, Path(work_dir), texts)
        if is_pair_model(lineup.models[BASELINE]):  # a model of text pairs: consecutive texts paired
            texts = list(zip(texts[0::2], texts[1::2]))
        plans = {b: _batches(_batch_texts(config, texts, b), b) for b in config.batch_sizes}
        measured = _measure(config, lineup, plans, texts)
    if is_regressor(lineup.models[BASELINE]):  # a value counts as the same within the parity gate's tolerance
        for name in lineup.models:
            same_values(measured.spans[BASELINE], measured.spans[name])
    classifier = SUPPORTED_MODELS.get(type(lineup.models[BASELINE]).__name__) in (
        TEXT_CLASSIFICATION,
        TEXT_PAIR_CLASSIFICATION,
    )
    rows = [_row(config, name, lineup, measured, plans, classifier) for name in lineup.models]
    result = BenchResult(rows=rows)
    result.markdown = _markdown(config, rows, source, measured.ceiling, classifier)
    if output:
        section = f"bench-{config.shape}" if config.shape else "bench-classifier" if classifier else "bench"
        write_report(output, result.markdown, section=section)
        log.info("Benchmark written to %s", output)
    if log_to_mlflow:
        result.run_id = _log_to_mlflow(config, result)
    return result


def _batch_texts(config: BenchConfig, texts: list[Any], batch_size: int) -> list[Any]:
    """The texts timed at ``batch_size``: all of them for batches of 32 and more and for the largest batch size
    (whose first pass is the one compared with PyTorch's), the first ``small_batch_sentences`` for the others."""
    if batch_size >= 32 or batch_size == max(config.batch_sizes):
        return texts
    return texts[: config.small_batch_sentences]


@dataclass
class _Lineup:
    """The models under test by variant name, in the order they run, and what each cost to get ready."""

    models: dict[str, Any] = field(default_factory=dict)
    load_times: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    #: what the memory probe loads for each variant: ``("flair" | "bundle", path)``
    paths: dict[str, tuple[str, Path]] = field(default_factory=dict)
    #: how each variant pads its encoder calls, for the executed FLOPs (default: as Flair does)
    padding: dict[str, str] = field(default_factory=lambda: {PYTORCH_BUCKETS: "canonical"})

    def add(self, name: str, model: Any, load_s: float, size: int, path: tuple[str, Path] | None = None) -> None:
        self.models[name] = model
        self.load_times[name] = load_s
        self.sizes[name] = size
        if path:
            self.paths[name] = path


def _line_up(config: BenchConfig, work: Path, texts: list[str]) -> _Lineup:
    """Load Flair's model, build the reference rows, export and load every variant (bundles under ``work``)."""
    from tqdm import tqdm

    lineup = _Lineup()
    baseline = load_flair_model(config.model_path)
    lineup.add(BASELINE, baseline, 0.0, config.model_path.stat().st_size, ("flair", config.model_path))
    runtime = RuntimeOptions(intra_op_num_threads=config.threads, inter_op_num_threads=1)
    transformer = has_one_transformer(baseline)
    backends = config.backends if transformer else _without_transformer(config.backends, has_char_lms(baseline))
    # Flair's export_onnx and the PyTorch buckets anchor rebuild a tagger's or classifier's own embeddings
    anchors = transformer and type(baseline).__name__ in ("SequenceTagger", "TextClassifier")
    if config.include_flair_onnx and anchors:
        _add_anchor(lineup, config.model_path, work, texts, runtime)
    if config.include_pytorch_buckets and anchors:
        started = time.perf_counter()
        model = _pytorch_buckets(config.model_path)
        lineup.add(PYTORCH_BUCKETS, model, time.perf_counter() - started, lineup.sizes[BASELINE])
    for backend in tqdm(backends, desc="exporting", unit="variant"):
        _add_variant(lineup, backend, _variant_runtime(config, backend, runtime), work)
    return lineup


def _without_transformer(backends: tuple[str, ...], char_lms: bool) -> tuple[str, ...]:
    """The variants that apply to a model without one transformer embedding: Flair's own model (``torch``) and,
    for a model with character language models, the onnx variants that export those (:data:`CHAR_LM_VARIANTS`);
    Flair's export_onnx and the encoder variants have nothing to export."""
    applies = CHAR_LM_VARIANTS if char_lms else ("torch",)
    kept = tuple(b for b in backends if b in applies) or ("torch",)
    skipped = [b for b in backends if b not in kept]
    if skipped:
        log.info(
            "The model holds no single transformer to export: benchmarking %s; skipped %s",
            ", ".join(kept),
            ", ".join(skipped),
        )
    return kept


def _add_anchor(lineup: _Lineup, model_path: Path, work: Path, texts: list[str], runtime: RuntimeOptions) -> None:
    """Flair's own ``export_onnx``, timed from export to a ready model; bundled too for the memory probe."""
    started = time.perf_counter()
    model, size = _flair_export_onnx(model_path, work, texts, runtime)
    lineup.add(ANCHOR, model, time.perf_counter() - started, size)
    anchor_bundle = _flair_onnx_bundle(model, work)
    if anchor_bundle:
        lineup.paths[ANCHOR] = ("bundle", anchor_bundle)


def _variant_runtime(config: BenchConfig, backend: str, runtime: RuntimeOptions) -> RuntimeOptions:
    """The session settings of variant ``backend``: the benchmark's, with the variant's overrides."""
    overrides = dict(VARIANTS[backend].get("runtime", {}))
    if overrides.get("encoder_workers") == "threads":
        overrides["encoder_workers"] = config.threads
    return runtime.updated(overrides)


def _add_variant(lineup: _Lineup, backend: str, runtime: RuntimeOptions, work: Path) -> None:
    """Export Flair's model as variant ``backend`` into ``work`` and load it, timing the load."""
    if runtime.length_buckets:
        workers = runtime.encoder_workers > 1
        if runtime.invariant_batches:
            lineup.padding[backend] = "canonical-workers" if workers else "canonical"
        else:
            lineup.padding[backend] = "workers" if workers else "buckets"
    options = {k: v for k, v in VARIANTS[backend].items() if k != "runtime"}
    export_config = ExportConfig(**options, runtime=runtime, parity=ParityConfig(enabled=False))
    info = save_bundle(lineup.models[BASELINE], work / backend, export_config)
    started = time.perf_counter()
    trusted = info.manifest.get("model_pickle") == PICKLE_NEEDS_OPT_IN  # written just now
    model = load_bundle(info.path, allow_pickle=trusted)
    load_s = time.perf_counter() - started
    lineup.add(backend, model, load_s, sum(e["size"] for e in info.manifest["files"].values()), ("bundle", info.path))


@dataclass
class _Measurements:
    """What the benchmark measured, by variant name (``latencies`` by variant and batch size)."""

    #: per timed pass, the latency of each batch
    latencies: dict[tuple[str, int], list[list[float]]]
    #: per sentence of the first pass at the largest batch size, the predictions and (classifiers) scores
    spans: dict[str, list]
    scores: dict[str, list]
    memory: dict[str, float | None]
    #: FLOPs of one pass at the largest batch size, by padding (None when the encoder's shape is unknown)
    flops: dict[str, float] | None
    #: GFLOP/s of a large matrix product
    ceiling: float


def _measure(
    config: BenchConfig, lineup: _Lineup, plans: dict[int, list[list[str]]], texts: list[str]
) -> _Measurements:
    """Timed passes, then peak memory, then the encoder's FLOPs and the machine's ceiling."""
    from tqdm import tqdm

    latencies, spans, scores = _timed_passes(config, lineup.models, plans)
    memory = {}
    if config.measure_memory:
        for name, (kind, path) in tqdm(lineup.paths.items(), desc="peak memory", unit="variant"):
            memory[name] = _peak_memory(kind, path, texts[:64], config.threads)
    flops = _pass_flops(lineup.models[BASELINE], plans[max(config.batch_sizes)], config.threads)
    return _Measurements(latencies, spans, scores, memory, flops, _matmul_gflops(config.threads))


def _timed_passes(
    config: BenchConfig, models: dict[str, Any], plans: dict[int, list[list[str]]]
) -> tuple[dict[tuple[str, int], list[list[float]]], dict[str, list], dict[str, list]]:
    """A warm-up, then ``config.repeats`` rounds of one pass per batch size and variant, interleaved; the
    latencies of each pass, and the predictions of each variant's first pass at the largest batch size."""
    from tqdm import tqdm

    largest = max(config.batch_sizes)
    for model in models.values():  # warm-up
        _timed_pass(model, plans[largest][:2], largest)
    latencies: dict[tuple[str, int], list[list[float]]] = {(n, b): [] for n in models for b in config.batch_sizes}
    spans: dict[str, list] = {}
    scores: dict[str, list] = {}
    total = config.repeats * len(models) * len(config.batch_sizes)
    with tqdm(total=total, desc="benchmark passes", unit="pass") as bar:
        for _ in range(config.repeats):
            for batch_size in config.batch_sizes:
                for name, model in models.items():
                    batch_latencies, sentences = _timed_pass(model, plans[batch_size], batch_size)
                    latencies[(name, batch_size)].append(batch_latencies)
                    if batch_size == largest and name not in spans:
                        spans[name] = [set(all_predictions(model, s)) for s in sentences]
                        scores[name] = [label_scores(s, model.label_type) for s in sentences]
                    bar.update()
    return latencies, spans, scores


def _pass_flops(model: Any, batches: list[list[str]], workers: int) -> dict[str, float] | None:
    """The encoder's FLOPs over ``batches``, by padding (see :func:`_encoder_shapes`)."""
    dims = _encoder_dims(model)
    if not dims:
        return None
    return {k: _encoder_flops(dims, v) for k, v in _encoder_shapes(model, batches, workers).items()}


def _row(
    config: BenchConfig,
    name: str,
    lineup: _Lineup,
    measured: _Measurements,
    plans: dict[int, list[list[str]]],
    classifier: bool,
) -> dict[str, Any]:
    """The report's row of variant ``name``: throughput per batch size, then fidelity and cost (``identical`` of
    ``sentences``: the texts of the largest batch size's first pass whose predictions equal Flair PyTorch's)."""
    largest = max(config.batch_sizes)
    row: dict[str, Any] = {"backend": name}
    for b in config.batch_sizes:
        row.update(_throughput(measured.latencies, name, b, plans[b]))
    spans, scores = measured.spans, measured.scores
    row["passes_s"] = [round(sum(p), 3) for p in measured.latencies[(name, largest)]]
    row["identical"] = sum(a == b for a, b in zip(spans[name], spans[BASELINE]))
    # F1 is 0 where nothing was found: with no prediction of PyTorch's to compare with, there is no F1 to give
    found = any(spans[BASELINE]) or any(spans[name])
    row["entity_f1"] = span_f1(spans[BASELINE], spans[name]) if found else None
    row["max_score_diff"] = max_score_diff(scores[BASELINE], scores[name]) if classifier else None
    row["sentences"] = len(spans[BASELINE])  # the texts compared
    row["load_s"] = lineup.load_times[name]
    row["size_mb"] = lineup.sizes[name] / 1e6
    row["peak_rss_mb"] = measured.memory.get(name)
    pass_time = statistics.median(sum(p) for p in measured.latencies[(name, largest)])
    flops = measured.flops
    row["gflops"] = flops["useful"] / pass_time / 1e9 if flops else None
    executed = flops and flops[lineup.padding.get(name, "flair")]
    row["gflops_executed"] = executed / pass_time / 1e9 if executed else None
    return row


def _throughput(
    latencies: dict[tuple[str, int], list[list[float]]], name: str, b: int, batches: list[list[str]]
) -> dict[str, float]:
    """Sentences/s of the median pass, its ratio to Flair PyTorch's, and p50/p95 batch latency."""
    passes = latencies[(name, b)]
    median_pass = statistics.median(sum(p) for p in passes)
    base_pass = statistics.median(sum(p) for p in latencies[(BASELINE, b)])
    all_batches = [x for p in passes for x in p]
    return {
        f"sps_{b}": sum(len(x) for x in batches) / median_pass,
        f"ratio_{b}": base_pass / median_pass,
        f"p50_ms_{b}": 1000 * percentile(all_batches, 0.5),
        f"p95_ms_{b}": 1000 * percentile(all_batches, 0.95),
    }


def _markdown(
    config: BenchConfig, rows: list[dict[str, Any]], source: str, ceiling: float, classifier: bool = False
) -> str:
    lines = [
        *_preamble(config, source, ceiling),
        *_throughput_table(config, rows, classifier),
        *_fidelity_table(config, rows, classifier),
    ]
    return "\n".join(lines) + "\n"


def _preamble(config: BenchConfig, source: str, ceiling: float) -> list[str]:
    """How, where and on what the benchmark ran."""
    versions = library_versions()
    return [
        "Measured by `flair-mlflow bench`; ratios compare variants measured side by side in one run, passes "
        "interleaved, median of the passes.",
        "",
        f"Command: `{config.command or 'flair-mlflow bench'}`",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_machine()}, {_plural(config.threads, 'thread', 'threads')} (torch and ONNX Runtime intra-op); "
        f"2048³ fp32 matrix product: {ceiling:.0f} GFLOP/s",
        f"- Model: `{config.model_path.name}`" + (" (random weights of this shape, `--shape`)" if config.shape else ""),
        f"- Sentences: {source}; {_coverage(config)}; {_plural(config.repeats, 'timed pass', 'timed passes')} per "
        "variant and batch size",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"- Variants: `{PYTORCH_BUCKETS}` is Flair's PyTorch encoder inside flair-mlflow's path (length "
        "buckets, lean pooling and decoding); `-unbucketed` variants pad every batch as Flair does; `-variable` "
        "ones take the cheapest groups, whose padding depends on the batch (the others are batch-invariant); "
        f"`-workers` variants run each batch in {_plural(config.threads, 'part', 'parts')} at once, one ONNX Runtime "
        "thread each. Encoder GFLOP/s: *useful* counts the sentences without padding, *executed* the padding each "
        "variant computes",
        "",
    ]


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _coverage(config: BenchConfig) -> str:
    """Which batch sizes run over which texts (see :func:`_batch_texts`)."""
    sizes = sorted(config.batch_sizes)
    every = [b for b in sizes if b >= 32 or b == sizes[-1]]
    first = [b for b in sizes if b not in every]
    if first and config.small_batch_sentences >= config.num_sentences:
        return "every batch size over all of them"
    said = f"{_batch_sizes(every)} over all of them"
    if first:
        said += f", {_batch_sizes(first)} over the first {config.small_batch_sentences}"
    return said


def _batch_sizes(sizes: list[int]) -> str:
    """``batch 4``, ``batches 1 and 8``."""
    words = [str(b) for b in sizes]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{'batch' if len(sizes) == 1 else 'batches'} {listed}"


def _throughput_table(config: BenchConfig, rows: list[dict[str, Any]], classifier: bool) -> list[str]:
    unit = "texts" if classifier else "sentences"
    sizes = config.batch_sizes
    largest = max(sizes)
    lines = [
        f"### Throughput ({unit}/s, and ratio to Flair PyTorch)",
        "",
        "| variant | "
        + " | ".join(f"batch {b}" for b in sizes)
        + f" | p50 / p95 ms per batch of {largest} | encoder GFLOP/s, useful / executed |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " | ---: | ---: |",
    ]
    for r in rows:
        cells = [f"{r[f'sps_{b}']:.1f} ({r[f'ratio_{b}']:.2f}x)" for b in sizes]
        gflops = f"{r['gflops']:.0f} / {r['gflops_executed']:.0f}" if r["gflops"] else "n/a"
        lines.append(
            f"| {r['backend']} | "
            + " | ".join(cells)
            + f" | {r[f'p50_ms_{largest}']:.0f} / {r[f'p95_ms_{largest}']:.0f} | {gflops} |"
        )
    return lines


def _fidelity_table(config: BenchConfig, rows: list[dict[str, Any]], classifier: bool) -> list[str]:
    agree, f1 = ("labels", "label") if classifier else ("entities", "entity")
    lines = [
        "",
        f"### Fidelity and cost (batch {max(config.batch_sizes)})",
        "",
        f"Identical {agree}: the texts of the first batch-{max(config.batch_sizes)} pass whose predicted {agree} "
        f"({'labels' if classifier else 'spans and labels'}; scores aside) equal those of `{BASELINE}`, the "
        f"reference; {f1} F1 of each variant's {agree} against the reference's (n/a where neither found any)"
        + ("; max score diff: the largest difference of a label's score" if classifier else "")
        + ".",
        "",
        f"| variant | identical {agree} | {f1} F1 vs PyTorch | "
        + ("max score diff | " if classifier else "")
        + "load (s) | size (MB) | peak RSS (MB) | passes (s) |",
        "| --- | ---: | ---: | " + ("---: | " if classifier else "") + "---: | ---: | ---: | --- |",
    ]
    for r in rows:
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "n/a"
        if r["backend"] == BASELINE:  # the reference itself: nothing to compare
            fidelity = "reference | — | " + ("— | " if classifier else "")
        else:
            f1_cell = "n/a" if r["entity_f1"] is None else f"{r['entity_f1']:.4f}"
            fidelity = f"{r['identical']}/{r['sentences']} | {f1_cell} | " + (
                f"{r['max_score_diff']:.1e} | " if classifier else ""
            )
        lines.append(
            f"| {r['backend']} | {fidelity}{r['load_s']:.2f} "
            f"| {r['size_mb']:.1f} | {rss} | {', '.join(map(str, r['passes_s']))} |"
        )
    return lines


def _log_to_mlflow(config: BenchConfig, result: BenchResult) -> str:
    """Log the benchmark as a run (nested in an active one) of the current tracking URI; return its id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    with mlflow.start_run(run_name="benchmark", nested=bool(mlflow.active_run())):
        mlflow.log_params(
            {
                "batch_sizes": ",".join(map(str, config.batch_sizes)),
                "threads": config.threads,
                "sentences": config.num_sentences,
                "repeats": config.repeats,
                "model": config.model_path.name,
            }
        )
        for r in result.rows:
            mlflow.log_metrics(_metrics(config, r))
        fig = _ratio_chart(config, result.rows)
        mlflow.log_figure(fig, "benchmark.png")
        plt.close(fig)
        mlflow.log_text(result.markdown, "BENCHMARKS.md")
        return mlflow.active_run().info.run_id


def _metrics(config: BenchConfig, r: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics of one report row, named after its variant."""
    key = r["backend"].replace("-", "_")
    metrics = {
        f"{key}_identical_share": r["identical"] / r["sentences"],
        f"{key}_load_s": r["load_s"],
        f"{key}_size_mb": r["size_mb"],
    }
    for b in config.batch_sizes:
        metrics.update(
            {
                f"{key}_sps_b{b}": r[f"sps_{b}"],
                f"{key}_ratio_b{b}": r[f"ratio_{b}"],
                f"{key}_p95_ms_b{b}": r[f"p95_ms_{b}"],
            }
        )
    if r["entity_f1"] is not None:
        metrics[f"{key}_entity_f1"] = r["entity_f1"]
    if r["peak_rss_mb"]:
        metrics[f"{key}_peak_rss_mb"] = r["peak_rss_mb"]
    return metrics


def _ratio_chart(config: BenchConfig, rows: list[dict[str, Any]]) -> Any:
    """A bar chart of each variant's throughput ratio to Flair PyTorch, per batch size."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(config.batch_sizes)
    for i, b in enumerate(config.batch_sizes):
        xs = [j + i * width for j in range(len(rows))]
        bars = ax.bar(xs, [r[f"ratio_{b}"] for r in rows], width, label=f"batch {b}")
        for bar, r in zip(bars, rows):
            ax.annotate(
                f"{r[f'ratio_{b}']:.2f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks([j + width * (len(config.batch_sizes) - 1) / 2 for j in range(len(rows))])
    ax.set_xticklabels([r["backend"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("throughput vs Flair PyTorch")
    ax.set_title(f"predict throughput, {config.threads} threads")
    ax.legend()
    fig.tight_layout()
    return fig
