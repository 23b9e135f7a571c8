"""Typed, validated configuration objects for export and loading.

Every object is a frozen dataclass, validated in ``__post_init__`` and serialisable to JSON
(``to_dict`` / ``from_dict``) so that it can be written into the bundle manifest.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.digests import sha256_file
from exporter.errors import ConfigError, did_you_mean

__all__ = [
    "Backend",
    "ExportConfig",
    "OnnxOptions",
    "ParityConfig",
    "RuntimeOptions",
    "TorchScriptOptions",
    "SEQUENCE_TAGGING",
    "TEXT_CLASSIFICATION",
    "TEXT_PAIR_CLASSIFICATION",
    "TEXT_PAIR_REGRESSION",
    "RELATION_EXTRACTION",
    "MULTITASK",
    "cache_dir",
    "check_integer",
    "fp16_unavailable",
    "int8_recipe",
]

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class Backend(str, enum.Enum):
    """The accelerated backends a bundle can hold."""

    TORCH = "torch"
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    #: a model already exported with Flair's own ``export_onnx``, bundled as it is
    FLAIR_ONNX = "flair-onnx"

    @classmethod
    def parse(cls, value: str | Backend) -> Backend:
        if isinstance(value, Backend):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            allowed = ", ".join(b.value for b in cls)
            raise ConfigError(f"Unknown backend {value!r}; choose one of: {allowed}.") from None


def check_integer(name: str, value: Any, low: int, high: int | None = None, *, note: str = "") -> None:
    """Refuse ``value`` for the option ``name`` unless it is an integer (not a bool) from ``low`` to ``high``:
    the one check, and the one message, of every integer option (``note`` adds what a special value means)."""
    if not isinstance(value, bool) and isinstance(value, int) and value >= low and (high is None or value <= high):
        return
    if low in (0, 1):
        kind = "a positive integer" if low == 1 else "a non-negative integer"
        remarks = [f"at most {high:,}"] if high is not None else []
    else:
        kind, remarks = f"an integer between {low} and {high}", []
    remarks += [note] if note else []
    if remarks:
        kind += f" ({', '.join(remarks)})"
    raise ConfigError(f"{name} must be {kind}, got {value!r}.", option=name)


def _positive_or_zero(name: str, value: int) -> None:
    check_integer(name, value, 0, note="0 = let ONNX Runtime decide")


#: ``RuntimeOptions.serving_path``: lean where the bundle can, Flair's model always, lean or refuse
SERVING_PATHS = ("auto", "flair", "lean")
#: what a bundle's manifest records as the path its pyfunc serves with (``manifest["serving_path"]``)
LEAN, FLAIR = "lean", "flair"


@dataclass(frozen=True)
class RuntimeOptions:
    """How an exported encoder runs when a bundle is loaded (ONNX Runtime session settings and batching).

    Attributes:
        providers: execution providers in order of preference.
        intra_op_num_threads: threads inside one operator; 0 lets ONNX Runtime choose.
        inter_op_num_threads: threads across operators; 0 lets ONNX Runtime choose.
        graph_optimization_level: one of ``disable``, ``basic``, ``extended``, ``all``.
        strict_providers: fail instead of falling back to the CPU when a provider is missing.
        allow_spinning: let ONNX Runtime's intra-op threads spin after each run (ORT's default). Off by
            default here: Flair's own torch work follows every encoder call, and spinning threads take the
            cores it needs (measured 10-15 % slower end to end on 2 cores, fp32 and int8).
        length_buckets: run each batch through the encoder in groups of similar subtoken length, each
            padded only to its own longest sentence (see ``exporter.runtime.buckets``). fp32 hidden states are
            unchanged up to summation order; int8 ones change a little, as dynamic quantization takes each
            call's activation scale from that call (the parity gate runs with the recorded setting).
        encoder_workers: run each batch's groups in this many parts at once, on as many threads. Each
            call still uses ``intra_op_num_threads``: on an N-core machine, ``intra_op_num_threads=1``
            with ``encoder_workers=N`` keeps every core on whole matrix products instead of splitting
            small ones (measured 9 % faster fp32 and 15 % int8 encoder time on 2 cores).
        max_call_rows: the most rows (sentences, or windows of a long one) in one encoder call; 0 (the
            default) leaves it to the buckets. With 1, every row runs alone (at its own length, or its
            canonical width with ``batch_invariant``), so an int8 graph that takes its activation scale from each call (``int8-dynamic``) gives a text the same
            entities in any batch (``exporter.runtime.buckets.run_in_groups``).
        batch_invariant: a text's answer must not depend on what it is batched with. Every text runs padded
            to a width of its own (its length rounded up on a fixed grid) in encoder calls of texts of that
            same width, so its hidden states, hence its tags and scores, are bit for bit the same alone, in a
            client's batch or merged with other requests (``exporter.runtime.buckets.canonical_width``). None
            (the default): on whenever ``length_buckets`` is; true with ``length_buckets`` off is refused
            (batches padded as Flair pads them depend on their longest text); false: the cheapest groups,
            whose padding depends on the batch. An int8 graph that takes its activation scale per call
            (``int8-dynamic``) also needs ``max_call_rows=1``.
        serving_path: what answers a bundle's pyfunc: ``auto`` (the default) serves lean where the bundle can
            (a transformer tagger or text classifier exported to ONNX: ONNX Runtime, ``tokenizers`` and numpy,
            neither Flair nor torch imported; ``exporter.runtime.lean``) and with Flair's own code otherwise;
            ``flair`` always uses Flair's model (at export: the model's requirements keep Flair and torch);
            ``lean`` refuses a bundle that cannot serve lean. Recorded at export, overridable at load.

    Session settings (threads, optimization level, ``allow_spinning``) apply to the ``onnx`` and
    ``flair-onnx`` backends; ``length_buckets`` to ``onnx``, ``torchscript`` and ``torch`` (Flair's own
    model, its transformer call run in buckets); ``encoder_workers`` to ``onnx`` and ``torchscript``
    (``flair-onnx`` keeps Flair's pooling inside its graph), as does ``max_call_rows``.
    """

    providers: tuple[str, ...] = (CPU_PROVIDER,)
    intra_op_num_threads: int = 0
    inter_op_num_threads: int = 0
    graph_optimization_level: str = "all"
    strict_providers: bool = False
    allow_spinning: bool = False
    length_buckets: bool = True
    encoder_workers: int = 1
    max_call_rows: int = 0
    batch_invariant: bool | None = None
    serving_path: str = "auto"

    def __post_init__(self) -> None:
        providers = self.providers
        if isinstance(providers, str):
            providers = (providers,)
        if not providers or not all(isinstance(p, str) and p for p in providers):
            raise ConfigError(
                f"providers must be a non-empty list of provider names, got {self.providers!r}.", "providers"
            )
        object.__setattr__(self, "providers", tuple(providers))
        _positive_or_zero("intra_op_num_threads", self.intra_op_num_threads)
        _positive_or_zero("inter_op_num_threads", self.inter_op_num_threads)
        for name in ("strict_providers", "allow_spinning", "length_buckets"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.", name)
        check_integer("encoder_workers", self.encoder_workers, 1)
        _positive_or_zero("max_call_rows", self.max_call_rows)
        if self.batch_invariant is not None and not isinstance(self.batch_invariant, bool):
            raise ConfigError(
                f"batch_invariant must be true, false or null (on with length_buckets), got {self.batch_invariant!r}.",
                "batch_invariant",
            )
        if self.batch_invariant and not self.length_buckets:
            raise ConfigError(
                "batch_invariant=true needs length_buckets: with length_buckets=false every batch is padded to its "
                "longest text, so a text's numbers depend on its neighbours. Leave length_buckets on, or set "
                "batch_invariant=false.",
                "batch_invariant",
            )
        if self.serving_path not in SERVING_PATHS:
            raise ConfigError(
                f"serving_path must be one of {', '.join(SERVING_PATHS)}, got {self.serving_path!r}"
                f"{did_you_mean(self.serving_path, SERVING_PATHS)}.",
                "serving_path",
            )
        if self.graph_optimization_level not in GRAPH_OPTIMIZATION_LEVELS:
            raise ConfigError(
                f"graph_optimization_level must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}, "
                f"got {self.graph_optimization_level!r}."
            )

    @property
    def invariant_batches(self) -> bool:
        """Whether texts run at their canonical widths (``batch_invariant``, or by default ``length_buckets``)."""
        return self.length_buckets if self.batch_invariant is None else self.batch_invariant

    def session_options_dict(self) -> dict[str, Any]:
        return {
            "intra_op_num_threads": self.intra_op_num_threads,
            "inter_op_num_threads": self.inter_op_num_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "allow_spinning": self.allow_spinning,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "providers": list(self.providers)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeOptions:
        return _from_dict(cls, data)

    @classmethod
    def for_loading(
        cls, recorded: Mapping[str, Any], runtime: RuntimeOptions | Mapping[str, Any] | None
    ) -> RuntimeOptions:
        """The options a bundle loads with: the recorded ones, replaced by ``runtime`` or updated with its keys."""
        if isinstance(runtime, RuntimeOptions):
            return runtime
        return cls.from_dict(recorded).updated(runtime)

    def updated(self, overrides: Mapping[str, Any] | None) -> RuntimeOptions:
        """Return a copy with ``overrides`` (for instance a pyfunc ``model_config``) applied."""
        if not overrides:
            return self
        known = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in overrides if k not in known]
        if unknown:
            hints = [f"{key!r}{did_you_mean(key, known)}" for key in unknown]
            raise ConfigError(f"Unknown runtime option(s) {', '.join(hints)}; allowed: {', '.join(known)}.")
        picked = dict(overrides)
        if "providers" in picked and isinstance(picked["providers"], str):
            picked["providers"] = (picked["providers"],)
        elif "providers" in picked:
            picked["providers"] = tuple(picked["providers"])
        return dataclasses.replace(self, **picked)


#: ONNX Runtime transformer-optimizer levels, by ORT's names: ``fusion`` runs only the transformer
#: fusions (attention, LayerNorm, GELU, ...), the others add ORT's graph optimizations of that level.
OPTIMIZATION_LEVELS = {"fusion": 0, "basic": 1, "extended": 2, "all": 99}
#: the largest difference of a classifier's label score a lossless export may show in the parity gate (the same
#: labels with other scores is a different model: a text pair joined with another separator moved them by 0.04)
LOSSLESS_SCORE_DIFF = 1e-3
#: the tasks a bundle records (``manifest["task"]``): one name each, in every layer
SEQUENCE_TAGGING = "sequence-tagging"
TEXT_CLASSIFICATION = "text-classification"
#: two texts per input (Flair's TextPairClassifier / TextPairRegressor)
TEXT_PAIR_CLASSIFICATION = "text-pair-classification"
TEXT_PAIR_REGRESSION = "text-pair-regression"
#: relations between the entities a tagger found (Flair's RelationExtractor), a task of a multitask model only
RELATION_EXTRACTION = "relation-extraction"
#: several models over the same texts (Flair's MultitaskModel; a relation extractor with its tagger)
MULTITASK = "multitask"
#: the int8 recipes, by name (each one function in exporter.backends.onnx_quantize.RECIPES)
INT8_RECIPES = ("int8-dynamic", "int8-per-token", "int8-block32", "int8-block128")
#: what ``quantize="int8"`` means (chosen from the measurements in docs/BENCHMARKS.md)
DEFAULT_INT8 = "int8-block32"
#: the values of ``OnnxOptions.quantize``: "int8" (the default recipe) or a recipe by name
QUANTIZATIONS = ("int8", *INT8_RECIPES)
PRECISIONS = ("fp32", "fp16")


def fp16_unavailable(providers: Sequence[str], providers_named: str = "the providers") -> str | None:
    """Why fp16 cannot run here, or None: it runs on ONNX Runtime's CUDA provider, which must be among
    ``providers`` (called ``providers_named`` in the message) and offered by this machine's onnxruntime."""
    if CUDA_PROVIDER not in providers:
        return f"is not among {providers_named} ({', '.join(providers)})"
    import onnxruntime as ort

    if CUDA_PROVIDER not in ort.get_available_providers():
        return "this machine's onnxruntime does not offer (install onnxruntime-gpu on a machine with CUDA)"
    return None


def int8_recipe(quantize: str | None) -> str | None:
    """The int8 recipe a ``quantize`` value names: ``int8`` means :data:`DEFAULT_INT8`; None stays None."""
    return DEFAULT_INT8 if quantize == "int8" else quantize


@dataclass(frozen=True)
class OnnxOptions:
    """How the encoder is converted to ONNX.

    Attributes:
        opset: the ONNX opset to export with (14 or newer).
        optimize: run ONNX Runtime's transformer optimizer at this level (``fusion``, ``basic``,
            ``extended``, ``all``), or not at all (None).
        quantize: an int8 recipe for CPUs, or None: ``int8`` (the default recipe), ``int8-dynamic`` (ONNX
            Runtime's dynamic quantization: one activation scale per call, so answers depend on the batch),
            ``int8-per-token`` (one activation scale per token: batch-independent), ``int8-block32`` /
            ``int8-block128`` (MatMulNBits 8-bit weights in blocks; batch-independent). Measured trade-offs
            in docs/BENCHMARKS.md.
        per_channel: ``int8-dynamic``: quantize weights per output channel (more faithful) rather than per
            tensor. The other recipes fix their own weight granularity and refuse ``per_channel=False``.
        precision: ``fp32``, or ``fp16`` for the CUDA execution provider.
        fp16_fallback: when fp16 is asked for on a machine without CUDA, export fp32 with a warning
            instead of refusing.
        external_data: always store the weights in an external-data file (automatic above 2 GB).
    """

    opset: int = 17
    optimize: str | None = None
    quantize: str | None = None
    per_channel: bool = True
    precision: str = "fp32"
    fp16_fallback: bool = False
    external_data: bool = False

    def __post_init__(self) -> None:
        check_integer("opset", self.opset, 14, 21)
        if self.optimize in ("", "none"):
            object.__setattr__(self, "optimize", None)
        if self.optimize is not None and self.optimize not in OPTIMIZATION_LEVELS:
            raise ConfigError(
                f"optimize must be one of {', '.join(OPTIMIZATION_LEVELS)} (or none), got {self.optimize!r}."
            )
        if self.quantize in ("", "none"):
            object.__setattr__(self, "quantize", None)
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise ConfigError(
                f"quantize must be one of {', '.join(QUANTIZATIONS)} (or none), got {self.quantize!r}.", "quantize"
            )
        recipe = self.recipe
        if not self.per_channel and recipe is not None and recipe != "int8-dynamic":
            raise ConfigError(
                f"per_channel=False (--per-tensor) applies to quantize='int8-dynamic' only; {recipe} fixes its own "
                "weight granularity. Ask for quantize='int8-dynamic' with per_channel=False, or keep per_channel=True."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.", "precision")
        if self.precision == "fp16" and self.quantize:
            raise ConfigError(
                "precision='fp16' and quantize='int8' exclude each other: choose fp16 for CUDA or int8 for CPUs."
            )

    @property
    def recipe(self) -> str | None:
        """The int8 recipe ``quantize`` names (``int8``: :data:`DEFAULT_INT8`), or None."""
        return int8_recipe(self.quantize)

    @property
    def lossy(self) -> bool:
        """True when the graph computes with less precision than the original (int8, fp16)."""
        return self.quantize is not None or self.precision == "fp16"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TorchScriptOptions:
    """How the encoder is traced for the TorchScript backend.

    Attributes:
        force_max_length: pad every batch to the tokenizer's maximum length, for compilers that need
            static shapes (AWS Neuron, for instance). Slower on CPUs.
        freeze: ``torch.jit.freeze`` the traced module (inlines weights, folds constants).
        quantize: ``int8`` (or None): PyTorch's dynamic int8 quantization of Flair's character language models
            (their LSTM and projection; per-call activation scales, so a text's numbers depend on its batch).
            Transformer encoders are quantized by the ``onnx`` backend's recipes instead.
    """

    force_max_length: bool = False
    freeze: bool = True
    quantize: str | None = None

    def __post_init__(self) -> None:
        if self.quantize in ("", "none"):
            object.__setattr__(self, "quantize", None)
        if self.quantize not in (None, "int8", "int8-dynamic"):
            raise ConfigError(
                f"TorchScript quantize={self.quantize!r} is not available; choose int8 (PyTorch's dynamic int8 of "
                "Flair's character language models) or none. The other int8 recipes are the onnx backend's.",
                option="quantize",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ParityConfig:
    """The parity gate run at the end of every export.

    Lossless backends (torch, TorchScript, ONNX fp32 with or without optimization) must give identical
    entities by default; lossy ones (int8, fp16) must agree with the original's own output at an entity
    F1 of at least 0.93 and, when a labeled set is given, lose at most half a point of gold F1.

    Attributes:
        enabled: run the gate at all.
        num_sentences: how many texts of the shipped check set (``exporter.quality.corpus.check_sentences``, 602
            natural texts, every 16th a paragraph beyond 512 subtokens) to check on when none are given; None
            for all of them. 128 by default (8 of them paragraphs): on the demo tagger's int8 export the 95 %
            interval of the entity F1 was 0.041 wide on 64 texts and 0.018 on all 602; each doubling of the
            texts doubles the gate's time (on a tiny model 2 s for 64, 5 s for 256).
        min_tag_agreement: share of sentences with identical entities required (default: 1.0 for
            lossless backends, no requirement for lossy ones).
        min_entity_f1: entity F1 of the exported model against the original's output (default: 1.0
            lossless, 0.93 lossy). A lossless export of a classifier also keeps every label's score within
            ``LOSSLESS_SCORE_DIFF`` (0.001) of the original's.
        max_gold_f1_drop: largest allowed loss of entity F1 against gold labels (0.005 = half a point).
        gold_conll: a labeled two-column CoNLL file; its sentences become the check sentences.
        gold_limit: how many sentences of ``gold_conll`` to use.
        force: record a failing report but do not raise.
    """

    enabled: bool = True
    num_sentences: int | None = 128
    min_tag_agreement: float | None = None
    min_entity_f1: float | None = None
    max_gold_f1_drop: float = 0.005
    gold_conll: str | None = None
    gold_limit: int = 1500
    force: bool = False

    def __post_init__(self) -> None:
        if self.num_sentences is not None:
            check_integer("num_sentences", self.num_sentences, 1, note="or None: all")
        for name in ("min_tag_agreement", "min_entity_f1", "max_gold_f1_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value!r}.", name)
        if self.gold_conll is not None:
            if not Path(self.gold_conll).is_file():
                raise ConfigError(
                    f"gold_conll {self.gold_conll!r} is not a file: give a two-column CoNLL file.", "gold_conll"
                )
            object.__setattr__(self, "gold_conll", str(self.gold_conll))

    def thresholds(self, lossy: bool) -> dict[str, float]:
        """The thresholds in force for a lossless or a lossy export."""
        agreement = self.min_tag_agreement if self.min_tag_agreement is not None else (0.0 if lossy else 1.0)
        f1 = self.min_entity_f1 if self.min_entity_f1 is not None else (0.93 if lossy else 1.0)
        thresholds = {"min_tag_agreement": agreement, "min_entity_f1": f1, "max_gold_f1_drop": self.max_gold_f1_drop}
        if not lossy:  # a lossless export moves a classifier's scores by float rounding only (1e-6 measured)
            thresholds["max_label_score_diff"] = LOSSLESS_SCORE_DIFF
        return thresholds

    def to_dict(self) -> dict[str, Any]:
        """As recorded in manifests: the gold set by file name and sha256, not by its local path."""
        data = dataclasses.asdict(self)
        if self.gold_conll:
            data["gold_conll"] = {"name": Path(self.gold_conll).name, "sha256": sha256_file(Path(self.gold_conll))}
        return data


@dataclass(frozen=True)
class ExportConfig:
    """Everything that decides how a Flair model is exported into a bundle.

    Attributes:
        backend: which accelerated backend the bundle holds.
        onnx: conversion options for the ONNX backend.
        runtime: session settings recorded in the bundle and used by default on load.
        parity: the parity gate.
        example_sentences: sentences used to trace the encoder (not used for the parity check).
        parity_sentences: sentences for the parity check; when empty, the gold set of ``parity.gold_conll``
            if given, else ``parity.num_sentences`` texts of the shipped check set
            (``exporter.quality.corpus.check_sentences``).
    """

    backend: Backend = Backend.ONNX
    onnx: OnnxOptions = field(default_factory=OnnxOptions)
    torchscript: TorchScriptOptions = field(default_factory=TorchScriptOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    parity: ParityConfig = field(default_factory=ParityConfig)
    example_sentences: tuple[str, ...] = ()
    parity_sentences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", Backend.parse(self.backend))
        for name in ("example_sentences", "parity_sentences"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(f"{name} must be a list of strings, got {type(value).__name__}.")
            if not all(isinstance(s, str) and s.strip() for s in value):
                raise ConfigError(f"{name} must hold non-empty strings only.")
            object.__setattr__(self, name, tuple(value))

    @property
    def lossy(self) -> bool:
        if self.backend is Backend.TORCHSCRIPT:
            return self.torchscript.quantize is not None
        return self.backend is Backend.ONNX and self.onnx.lossy

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend.value,
            "onnx": self.onnx.to_dict(),
            "torchscript": self.torchscript.to_dict(),
            "runtime": self.runtime.to_dict(),
            "parity": self.parity.to_dict(),
        }


def _from_dict(cls: type, data: Mapping[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} keys: {', '.join(unknown)}. Allowed: {', '.join(sorted(known))}.")
    values = dict(data)
    if "providers" in values:
        values["providers"] = tuple(values["providers"])
    return cls(**values)


def cache_dir() -> Path:
    """Where flair-mlflow caches what it builds or downloads: ``$FLAIR_MLFLOW_CACHE`` or ``~/.cache/flair-mlflow``
    (the demo models, verified model downloads)."""
    return Path(os.environ.get("FLAIR_MLFLOW_CACHE") or Path.home() / ".cache" / "flair-mlflow")
