"""ONNX Runtime sessions as a bundle's runtime options say: providers (those this machine offers, in order),
threads, optimization level, spinning; a provider ORT silently dropped is named. No torch: the lean serving
path builds its session here too.
"""

from __future__ import annotations

import logging
from typing import Any

from exporter.config import CPU_PROVIDER, RuntimeOptions
from exporter.errors import MissingDependencyError, ProviderError, install_hint

__all__ = ["check_session_providers", "inference_session", "provider_name", "resolve_providers", "session_options"]

log = logging.getLogger(__name__)


def provider_name(entry: Any) -> str:
    """A provider's name, given as a name or as ONNX Runtime's ``(name, options)`` pair."""
    return entry[0] if isinstance(entry, (list, tuple)) else str(entry)


def resolve_providers(requested: tuple[str, ...], strict: bool) -> list[str]:
    """Keep the available providers in the requested order; warn (or fail when strict) about the rest."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    requested = tuple(provider_name(p) for p in requested)
    missing = [p for p in requested if p not in available]
    if missing and strict:
        raise ProviderError(
            f"Execution provider(s) {', '.join(missing)} requested with strict providers, but this machine's "
            f"onnxruntime offers only {', '.join(sorted(available))}. On a machine with CUDA, replace onnxruntime "
            f"with onnxruntime-gpu (pip uninstall onnxruntime, then {install_hint('onnxruntime-gpu', 'gpu')}); "
            "elsewhere, load without strict providers."
        )
    chosen = [p for p in requested if p in available]
    if missing:
        log.warning(
            "Execution provider(s) %s not available on this machine (available: %s); falling back to %s.",
            ", ".join(missing),
            ", ".join(sorted(available)),
            ", ".join(chosen or [CPU_PROVIDER]),
        )
    if CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


def check_session_providers(session: Any, asked: list[str], strict: bool) -> list[str]:
    """The providers ``session`` runs on. ONNX Runtime drops a provider it offers but cannot start (CUDA without
    its libraries, a device it cannot open) with nothing but a log line: warn, or fail when strict, as MLflow's
    own onnx flavor does."""
    running = list(session.get_providers())
    dropped = [p for p in asked if p not in running]
    if dropped and strict:
        raise ProviderError(
            f"ONNX Runtime did not start execution provider(s) {', '.join(dropped)} (running on {', '.join(running)}): "
            "check that the provider's libraries and device are present, or load without strict providers."
        )
    if dropped:
        log.warning(
            "ONNX Runtime did not start execution provider(s) %s; the encoder runs on %s.",
            ", ".join(dropped),
            ", ".join(running),
        )
    return running


_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def session_options(runtime: RuntimeOptions) -> Any:
    """ONNX Runtime session options for ``runtime``: threads, graph optimization level, spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = runtime.intra_op_num_threads
    options.inter_op_num_threads = runtime.inter_op_num_threads
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[runtime.graph_optimization_level])
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if runtime.allow_spinning else "0")
    return options


def inference_session(model_path: Any, runtime: RuntimeOptions) -> tuple[Any, list[str]]:
    """An ``InferenceSession`` of the graph at ``model_path`` and the providers it runs on."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", purpose="the ONNX backend") from e
    providers = resolve_providers(runtime.providers, runtime.strict_providers)
    session = ort.InferenceSession(str(model_path), session_options(runtime), providers=providers)
    return session, check_session_providers(session, providers, runtime.strict_providers)
