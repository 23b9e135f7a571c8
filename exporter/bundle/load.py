"""Read a bundle: verify every checksum, read ``model.pt`` as data, and let the backend rebuild the model.

Loading verifies every checksum before ``model.pt`` is read, reads it as data (``torch.load(weights_only=True)``
with an allowlist, see ``exporter.format.modelfile``) unless the caller passes ``allow_pickle=True``, and
resolves every path relative to the bundle directory. This is the reading half of the bundle layer and all a
logged model needs at load time; writing is ``exporter.bundle.save``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from exporter.backends import backend_module
from exporter.backends.kinds import flair_path_reason
from exporter.config import FLAIR, LEAN, Backend, RuntimeOptions
from exporter.errors import BundleError, ConfigError, UnsafeModelFileError
from exporter.format.manifest import verify_bundle
from exporter.format.modelfile import (
    ALLOW_PICKLE_ENV,
    MODEL_FILE,
    PICKLE_NEEDS_OPT_IN,
    SUPPORTED_MODELS,
    all_embeddings_classes,
    allow_pickle_from_env,
    check_task_classes,
    load_state,
    quiet_model_init,
    restore_objects,
)
from exporter.runtime.lean.model import LEAN_SECTION, load_lean

__all__ = ["OPT_IN_HINT", "load_bundle", "load_for_serving", "serves_lean"]

log = logging.getLogger(__name__)

OPT_IN_HINT = (
    "If you trust where this bundle came from, load it with allow_pickle=True (exporter.load_bundle, "
    f"mlflow_flavor.load_model) or set {ALLOW_PICKLE_ENV}=1 in the environment of the loading process "
    "(mlflow.pyfunc.load_model, mlflow models serve, the flair-mlflow command line)."
)


def _resolve_model_class(name: str) -> type:
    import flair.models

    if name not in SUPPORTED_MODELS:
        raise BundleError(f"The bundle holds a {name!r}, which this flair-mlflow cannot load.")
    return getattr(flair.models, name)


def load_bundle(
    path: str | Path,
    runtime: RuntimeOptions | Mapping[str, Any] | None = None,
    expected_manifest_sha256: str | None = None,
    *,
    allow_pickle: bool | None = None,
) -> Any:
    """Verify and load a bundle; return the Flair model, accelerated as the bundle says.

    Args:
        path: the bundle directory (any working directory, any absolute or relative path).
        runtime: session overrides (providers, thread counts, strict providers) for the ONNX backend.
        expected_manifest_sha256: the manifest digest recorded elsewhere (the MLmodel file); checked when given.
        allow_pickle: unpickle ``model.pt`` fully, running whatever code it names. Needed only for bundles of
            schema 1 and 2 and for ``flair-onnx`` / Flair JIT bundles; pass it only for bundles you trust.
            ``None`` (default): ``True`` only where the process's environment sets ``FLAIR_MLFLOW_ALLOW_PICKLE=1``.

    Raises:
        UnsafeModelFileError: ``model.pt`` is more than plain data and ``allow_pickle`` was not given.
    """
    path = Path(path).absolute()
    manifest = verify_bundle(path, expected_manifest_sha256)
    return _load_verified(path, manifest, RuntimeOptions.for_loading(manifest["runtime"], runtime), allow_pickle)


def load_for_serving(
    path: str | Path,
    runtime: RuntimeOptions | Mapping[str, Any] | None = None,
    expected_manifest_sha256: str | None = None,
    *,
    allow_pickle: bool | None = None,
) -> Any:
    """What a bundle's pyfunc serves: the lean model (``exporter.runtime.lean``: ONNX Runtime, ``tokenizers`` and
    numpy, neither Flair nor torch imported) where the bundle can serve lean and ``serving_path`` is not
    ``flair``; else :func:`load_bundle`'s Flair model. Arguments as :func:`load_bundle`'s."""
    path = Path(path).absolute()
    manifest = verify_bundle(path, expected_manifest_sha256)
    options = RuntimeOptions.for_loading(manifest["runtime"], runtime)
    if serves_lean(manifest, options):
        return load_lean(path, manifest, options)
    return _load_verified(path, manifest, options, allow_pickle)


def serves_lean(manifest: Mapping[str, Any], options: RuntimeOptions) -> bool:
    """Whether a bundle serves lean under ``options.serving_path`` (``lean`` where it cannot: refused, with why)."""
    if options.serving_path == FLAIR:
        return False
    if LEAN_SECTION in manifest and (options.serving_path == LEAN or manifest.get("serving_path") == LEAN):
        return True
    if options.serving_path == LEAN and LEAN_SECTION not in manifest:
        raise ConfigError(
            f"serving_path='lean' cannot serve this bundle: {flair_path_reason(manifest)}. Load it with serving_path "
            "'auto' or 'flair'.",
            "serving_path",
        )
    return False


def _load_verified(path: Path, manifest: Mapping[str, Any], options: RuntimeOptions, allow_pickle: bool | None) -> Any:
    """The Flair model of a verified bundle."""
    if allow_pickle is None:
        allow_pickle = allow_pickle_from_env()
    module = backend_module(Backend.parse(manifest["backend"]))
    model_cls = _resolve_model_class(manifest["model_class"])
    state = _read_state(path, manifest, module, allow_pickle)
    with quiet_model_init():
        model = module.load(path, manifest, options, state, model_cls)
    model.eval()
    _make_batch_invariant(model, options, wide=LEAN_SECTION in manifest)
    model.flair_mlflow_manifest = manifest
    return model


#: the models already said to be not batch-invariant in this process (class, gaps, asked for)
_SAID_NOT_INVARIANT: set[tuple[str, tuple[str, ...], bool]] = set()


def _make_batch_invariant(model: Any, options: RuntimeOptions, wide: bool = False) -> None:
    """The head's share of ``batch_invariant`` (the encoders' is their canonical widths; ``wide``: sums in float64,
    as the lean path does, for a bundle that can serve lean); a model that cannot keep the promise says why once,
    at load: a warning where ``batch_invariant=true`` was asked for, else at INFO."""
    if not options.invariant_batches:
        return
    from exporter.runtime.invariance import fix_head_shapes, invariance_gaps  # lazy: torch

    fix_head_shapes(model, wide)
    gaps = invariance_gaps(model, options.providers)
    said = (type(model).__name__, tuple(gaps), bool(options.batch_invariant))
    if gaps and said not in _SAID_NOT_INVARIANT:  # once a process: an export and a log load the bundle again
        _SAID_NOT_INVARIANT.add(said)
        named = ", ".join(gaps[:3]) + (", ..." if len(gaps) > 3 else "")
        log.log(
            logging.WARNING if options.batch_invariant else logging.INFO,
            "This %s's answers are not batch-invariant: %s compute%s with the whole batch's shapes, so a text's scores "
            "can differ in the last digits with its neighbours (and a near tie flip).",
            type(model).__name__,
            named,
            "s" if len(gaps) == 1 else "",
        )


def _opt_in_hint(manifest: Mapping[str, Any]) -> str:
    schema = manifest.get("schema_version")
    if schema == 3:
        return OPT_IN_HINT
    return (
        f"This bundle has schema version {schema}, written before flair-mlflow stored model.pt as plain data: "
        f"export the model again, or: {OPT_IN_HINT}"
    )


def _read_state(path: Path, manifest: Mapping[str, Any], module: ModuleType, allow_pickle: bool) -> dict[str, Any]:
    """``model.pt`` as data, refused (naming the opt-in) where it needs code; checked against the manifest."""
    if not allow_pickle and (module.MODEL_PICKLE_ALWAYS or manifest.get("model_pickle") == PICKLE_NEEDS_OPT_IN):
        raise UnsafeModelFileError(
            f"{path} holds a {module.PICKLE_REASON or 'model whose model.pt needs code'}: loading its model.pt "
            f"needs full unpickling, which runs code the file names. Refused by default. {OPT_IN_HINT}"
        )
    hint = _opt_in_hint(manifest)
    state = load_state(path / MODEL_FILE, allow_pickle=allow_pickle, opt_in_hint=hint)
    check_task_classes(state, f"{path}/{MODEL_FILE}")  # a class named, a multitask model's tasks well formed
    if state["__cls__"] != manifest["model_class"]:
        raise BundleError(
            f"{path}/{MODEL_FILE} holds a {state['__cls__']!r}, the manifest says {manifest['model_class']!r}."
        )
    if not allow_pickle:
        # under every key any model class reads: Flair reads the one of its class, whatever the checker would pick
        names = all_embeddings_classes(state) or [None]
        refused = [name for name in names if name not in module.DATA_EMBEDDINGS]
        if refused:
            raise UnsafeModelFileError(
                f"{path}/{MODEL_FILE} names embeddings {', '.join(map(repr, refused))}; a {manifest['backend']} bundle "
                f"loaded without allow_pickle may hold only {', '.join(map(str, module.DATA_EMBEDDINGS))}. {hint}"
            )
    return restore_objects(state)
