"""The ``flair_mlflow`` MLflow flavor: save, log and load Flair models as verified bundles.

Follows MLflow's flavor contract: ``save_model`` writes an MLflow model directory (``MLmodel``, the bundle
under ``bundle/``, the runtime modules of this package and ``exporter`` under ``code/``, explicit pip
requirements),
``log_model`` is a thin call to ``Model.log``, ``load_model`` returns the accelerated Flair model, and
``_load_pyfunc`` returns the pyfunc wrapper. The ``MLmodel`` flavor section records the backend, the
manifest's sha256 (checked before anything is unpickled), providers, session options and versions.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from exporter.backends import flavor_metadata
from exporter.bundle.load import serves_lean
from exporter.bundle.save import BundleInfo, save_bundle
from exporter.config import (
    FLAIR,
    LEAN,
    MULTITASK,
    SEQUENCE_TAGGING,
    Backend,
    ExportConfig,
    OnnxOptions,
    ParityConfig,
    RuntimeOptions,
    TorchScriptOptions,
)
from exporter.errors import ConfigError
from exporter.format.manifest import MANIFEST_FILE, read_manifest, verify_bundle
from exporter.format.modelfile import load_flair_model
from exporter.format.specs import spec
from exporter.format.tasks import with_tagger
from exporter.quality.parity import parity_keys
from mlflow_flavor.fetch import outside_bundle_digests, seal_version
from mlflow_flavor.loading import _load_pyfunc, check_model_config, load_model  # noqa: F401  (the contract's loaders)
from mlflow_flavor.mlmodel import BUNDLE_SUBPATH, CODE_SUBPATH, FILES_RECORD_KEY, FLAVOR_NAME, LOADER_MODULE
from mlflow_flavor.pyfunc import ALLOWED_PARAMS, ServingOptions

__all__ = [
    "FLAVOR_NAME",
    "get_default_pip_requirements",
    "load_model",
    "log_model",
    "save_model",
]

log = logging.getLogger(__name__)

EXAMPLE_TEXTS = ["Angela Merkel met Tim Cook in Paris .", "George Washington went to Washington ."]
#: What a logged model's ``code/`` holds: the modules that loading and predicting import (``mlflow_flavor``, the
#: pyfunc loader package, and all it imports), nothing else: no writing side, registry, tools, CLI or check set.
#: Code in ``code/`` runs on load; tests/test_architecture.py keeps this list equal to the import graph's.
RUNTIME_MODULES = (
    "exporter",
    "exporter.backends",
    "exporter.backends.charlm_bundle",
    "exporter.backends.encoder_bundle",
    "exporter.backends.flair_onnx",
    "exporter.backends.kinds",
    "exporter.backends.lean_bundle",
    "exporter.backends.onnx",
    "exporter.backends.onnx_charlm",
    "exporter.backends.onnx_graph",
    "exporter.backends.onnx_per_token",
    "exporter.backends.onnx_quantize",
    "exporter.backends.torch",
    "exporter.backends.torchscript",
    "exporter.backends.torchscript_charlm",
    "exporter.backends.tracing",
    "exporter.bundle",
    "exporter.bundle.load",
    "exporter.config",
    "exporter.digests",
    "exporter.errors",
    "exporter.format",
    "exporter.format.manifest",
    "exporter.format.modelfile",
    "exporter.format.specs",
    "exporter.format.tasks",
    "exporter.packaging",
    "exporter.runtime",
    "exporter.runtime.buckets",
    "exporter.runtime.charlm",
    "exporter.runtime.embeddings",
    "exporter.runtime.fastpath",
    "exporter.runtime.grouping",
    "exporter.runtime.invariance",
    "exporter.runtime.lean",
    "exporter.runtime.lean.encoder",
    "exporter.runtime.lean.heads",
    "exporter.runtime.lean.model",
    "exporter.runtime.lean.pooling",
    "exporter.runtime.lean.subtokens",
    "exporter.runtime.lean.text",
    "exporter.runtime.sessions",
    "exporter.runtime.settings",
    "exporter.runtime.words",
    "mlflow_flavor",
    "mlflow_flavor.batching",
    "mlflow_flavor.boundary",
    "mlflow_flavor.fetch",
    "mlflow_flavor.inputs",
    "mlflow_flavor.loading",
    "mlflow_flavor.mlmodel",
    "mlflow_flavor.pyfunc",
    "mlflow_flavor.redact",
)
#: the backends whose bundles run on ONNX Runtime (their requirements name onnxruntime, or onnxruntime-gpu)
ONNXRUNTIME_BACKENDS = frozenset({Backend.ONNX, Backend.FLAIR_ONNX})


#: read by MLflow's ``Model.log`` from the keywords it passes on to ``save_model`` (accepted, used by MLflow)
_MLFLOW_PASSED_KEYWORDS = ("validate_serving_input",)
#: where each option of the typed configs goes, for the refusal of a flat keyword
_NESTED_OPTIONS = (
    ("onnx", "OnnxOptions", OnnxOptions),
    ("torchscript", "TorchScriptOptions", TorchScriptOptions),
    ("parity", "ParityConfig", ParityConfig),
)


def _keyword_hint(key: str, value: Any, valid: Sequence[str]) -> str:
    """How to say ``key=value`` instead: the nested config that holds it, or the closest valid keyword."""
    nested: dict[str, tuple[str, str]] = {}
    for arg, cls, typ in _NESTED_OPTIONS:  # the first config that has a field names it (quantize: OnnxOptions)
        for f in dataclasses.fields(typ):
            nested.setdefault(f.name, (arg, cls))
    session = ("intra_op_num_threads", "inter_op_num_threads", "graph_optimization_level", "allow_spinning")
    name, prefix = key, ""
    if key not in nested and key not in session:
        close = difflib.get_close_matches(key, [*valid, *nested, *session], n=1, cutoff=0.6)
        if not close:
            return f"{key}: not an option here"
        if close[0] in valid:
            return f"{key}: did you mean {close[0]}=...?"
        name, prefix = close[0], f"did you mean {close[0]}? "
    if name in session:
        return f"{key}: {prefix}a session option, given as session_options={{{name!r}: {value!r}}}"
    arg, cls = nested[name]
    also = ""
    if name == "quantize":  # TorchScript's: PyTorch's int8 of character language models
        also = (
            " (with backend='torchscript', for Flair's character LMs: torchscript=TorchScriptOptions(quantize='int8'))"
        )
    return f"{key}: {prefix}give it as {arg}={cls}({name}={value!r}) (from exporter.config import {cls}){also}"


def _keywords(function: Any, *excluded: str) -> list[str]:
    """The parameter names of ``function``, but for ``**kwargs`` and ``excluded``."""
    return [p for p in inspect.signature(function).parameters if p not in ("kwargs", *excluded)]


def _refuse_unknown_keywords(function: str, kwargs: Mapping[str, Any], valid: Sequence[str]) -> None:
    """Raise ``TypeError`` for keywords ``function`` does not take (those MLflow reads pass), each with its
    closest valid form."""
    unknown = {k: v for k, v in kwargs.items() if k not in valid and k not in _MLFLOW_PASSED_KEYWORDS}
    if not unknown:
        return
    hints = [_keyword_hint(key, value, valid) for key, value in unknown.items()]
    raise TypeError(
        f"{function}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; nothing was saved. "
        + "; ".join(hints)
    )


#: what a model served lean imports besides mlflow (which MLflow adds itself) and ONNX Runtime
LEAN_PACKAGES = ("tokenizers", "numpy", "pandas", "safetensors", "segtok")


def get_default_pip_requirements(backend: str | Backend = Backend.ONNX, serving_path: str = FLAIR) -> list[str]:
    """Pinned requirements for loading a bundle of ``backend`` where flair-mlflow is not installed: with
    ``serving_path='lean'`` (``exporter.runtime.lean``) ONNX Runtime, tokenizers, numpy, pandas, safetensors and
    segtok, neither Flair nor torch nor transformers."""
    from importlib.metadata import PackageNotFoundError, version

    from mlflow.utils.requirements_utils import _get_pinned_requirement
    from packaging.version import Version

    packages = list(LEAN_PACKAGES) if serving_path == LEAN else ["flair", "torch", "transformers", "pandas", "numpy"]
    if Backend.parse(backend) in ONNXRUNTIME_BACKENDS:
        try:
            version("onnxruntime-gpu")
            packages.append("onnxruntime-gpu")
        except PackageNotFoundError:
            packages.append("onnxruntime")
    # the public version: a local label (torch's "+cpu") installs only from its maker's own index
    return [_get_pinned_requirement(p, version=Version(version(p)).public) for p in packages]


def served_path(manifest: Mapping[str, Any], model_config: Mapping[str, Any] | None = None) -> str:
    """The path a logged model's pyfunc serves with (``lean`` or ``flair``), from its manifest and the runtime keys
    of its ``model_config``; a ``serving_path='lean'`` the bundle cannot serve is refused."""
    runtime, _ = check_model_config(model_config)
    options = RuntimeOptions.for_loading(manifest["runtime"], runtime)
    return LEAN if serves_lean(manifest, options) else FLAIR


def default_signature(task: str = SEQUENCE_TAGGING, tasks: Sequence[Mapping[str, Any]] | None = None):
    """Output: per text, the task's answer under its spec's name (:data:`exporter.format.specs.TASKS`: entities,
    labels, a value, or a multitask model's one column per task). Params: the whitelisted prediction options.
    Input: none declared; the pyfunc takes texts (a DataFrame ``text`` column, a list of strings or one string) or
    pairs (:mod:`mlflow_flavor.inputs`).

    No input schema, because each one MLflow offers breaks a request format: with a ``string`` column MLflow's
    scoring server casts numbers and nulls to strings before the model sees them (``[1, None]`` would be tagged
    as the texts "1" and "None"), and with ``AnyType`` or an object tensor it cannot read ``text/csv`` at all
    (it asks the schema for pandas types). The pyfunc checks every value it receives and answers 400 for
    anything that is not a string. One case it cannot see: without a schema the server turns an ``inputs`` or
    ``instances`` list that mixes strings and numbers (``["a", 3]``) into a numpy array of strings before the
    model is called, so ``3`` arrives as the text "3" (a list of numbers alone, nulls and every DataFrame
    format keep their types and are refused).
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Object, ParamSchema, Property, Schema

    entity = Object(
        [
            Property("text", DataType.string),
            Property("label", DataType.string),
            Property("start", DataType.long),
            Property("end", DataType.long),
            Property("score", DataType.double),
        ]
    )
    label = Object([Property("label", DataType.string), Property("score", DataType.double)])
    head = [Property(name, kind) for name, kind in (("text", DataType.string), ("start", DataType.long))]
    head += [Property("end", DataType.long), Property("label", DataType.string)]
    relation = Object(
        [
            Property("head", Object(head)),
            Property("tail", Object(head)),
            Property("label", DataType.string),
            Property("score", DataType.double),
        ]
    )
    # the MLflow type of each answer the task specs name (exporter.format.specs.TaskSpec.answer)
    answers = {
        "entities": Array(entity),
        "labels": Array(label),
        "relations": Array(relation),
        "value": DataType.double,
    }
    if task == MULTITASK:  # one column per task, under the task's name
        outputs = Schema([ColSpec(answers[spec(t["task"]).answer], name=t["name"]) for t in tasks or ()])
    else:
        answer = spec(task).answer
        outputs = Schema([ColSpec(answers[answer], name=answer)])
    return ModelSignature(outputs=outputs, params=ParamSchema(param_specs(task)))


def param_specs(task: str) -> list[Any]:
    """Every param of :data:`~mlflow_flavor.pyfunc.ALLOWED_PARAMS`, with its default for ``task``: all of them,
    whatever the task, so that MLflow passes a param of another task on (the pyfunc refuses it with the list of
    the model's own) instead of dropping it with a warning; and the serving settings (``max_wait_ms``, ...), whose
    place is the model_config, declared with no default so that a request setting one is refused too."""
    from mlflow.types.schema import DataType, ParamSpec

    types = {bool: DataType.boolean, int: DataType.long, float: DataType.double, str: DataType.string}
    specs = []
    for name, (kind, default) in ALLOWED_PARAMS.items():
        if name == "output":
            default = spec(task).answer
        if kind is tuple:  # a list of strings (candidate_labels)
            specs.append(ParamSpec(name, DataType.string, list(default), (-1,)))
        else:
            specs.append(ParamSpec(name, types[kind], default))
    # the serving settings, default None: a request that sets one is refused (MLflow would drop it unseen)
    for field in dataclasses.fields(ServingOptions):
        kind = type(field.default)
        specs.append(ParamSpec(field.name, types[kind], None))
    return specs


def runtime_files() -> dict[str, Path]:
    """The source file of each module of :data:`RUNTIME_MODULES`, by its path relative to ``code/``."""
    files = {}
    for name in RUNTIME_MODULES:
        source = Path(importlib.util.find_spec(name).origin)
        files["/".join(name.split(".")) + ("/__init__.py" if source.name == "__init__.py" else ".py")] = source
    return files


def _copy_code(path: Path, extra_code_paths: Sequence[str] | None) -> str:
    code_dir = path / CODE_SUBPATH
    for relative, source in runtime_files().items():
        (code_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, code_dir / relative)
    code_dir.mkdir(exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for extra in extra_code_paths or ():
        src = Path(extra)
        if src.is_dir():
            shutil.copytree(src, code_dir / src.name, ignore=ignore)
        else:
            shutil.copy2(src, code_dir / src.name)
    return CODE_SUBPATH


def _export_config(
    export_config: ExportConfig | None,
    *,
    backend: str | Backend,
    providers: Sequence[str] | str | None,
    session_options: Mapping[str, Any] | None,
    strict_providers: bool,
    onnx: OnnxOptions | None,
    torchscript: TorchScriptOptions | None,
    parity: ParityConfig | None,
    example_sentences: Sequence[str] | None,
    parity_sentences: Sequence[str] | None,
) -> ExportConfig:
    """The one :class:`ExportConfig` of ``save_model``'s export arguments: ``export_config``, else built from
    ``backend``, ``providers``, ``session_options``, ``strict_providers``, the sentences and the typed options."""
    if export_config is not None:
        if not isinstance(export_config, ExportConfig):
            raise ConfigError(f"export_config must be an ExportConfig, got {type(export_config).__name__}.")
        return export_config
    runtime_values: dict[str, Any] = dict(session_options or {})
    allowed = {"intra_op_num_threads", "inter_op_num_threads", "graph_optimization_level", "allow_spinning"}
    unknown = sorted(set(runtime_values) - allowed)
    if unknown:
        raise ConfigError(f"Unknown session option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.")
    if providers:
        runtime_values["providers"] = tuple([providers] if isinstance(providers, str) else providers)
    return ExportConfig(
        backend=Backend.parse(backend),
        onnx=onnx or OnnxOptions(),
        torchscript=torchscript or TorchScriptOptions(),
        runtime=RuntimeOptions(**runtime_values, strict_providers=strict_providers),
        parity=parity or ParityConfig(),
        example_sentences=tuple(example_sentences or ()),
        parity_sentences=tuple(parity_sentences or ()),
    )


def _default_model_config(manifest: Mapping[str, Any], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every ``model_config`` key the model takes, with the bundle's runtime settings, the pyfunc's defaults and
    what ``save_model(model_config=...)`` gave."""
    runtime = RuntimeOptions.from_dict(manifest["runtime"]).to_dict()
    return {**runtime, **dataclasses.asdict(ServingOptions()), **dict(given or {})}


def _parity_summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not report:
        return None
    named = parity_keys(report.get("measure", "entity"))  # entity, label or answer: as the task names it
    keys = (
        "sentences",
        "measure",
        "identical_sentences",
        named["agreement"],
        named["f1"],
        "max_abs_embedding_diff",
        "max_abs_value_diff",
        "max_label_score_diff",
        "gold_f1_original",
        "gold_f1_exported",
        "gold_f1_drop",
        "int8_recipe",
        "passed",
    )
    summary = {k: report[k] for k in keys if k in report}
    # each 95 % bootstrap interval as two numbers (MLmodel readers and MLflow metrics take scalars)
    for key in (named["f1"], "gold_f1_original", "gold_f1_exported", "gold_f1_drop"):
        interval = report.get(f"{key}_interval")
        if interval:
            summary[f"{key}_low"], summary[f"{key}_high"] = float(interval[0]), float(interval[1])
    return summary


def _place_bundle(flair_model: Any, target: Path, config: ExportConfig, tagger: Any = None):
    """Export ``flair_model`` (a Flair model, a Flair ``.pt`` path, or an existing bundle directory) into ``target``;
    a relation extractor with the ``tagger`` (a model or a ``.pt`` path) that finds its entities."""
    if tagger is not None:
        models = [load_flair_model(m) if isinstance(m, (str, os.PathLike)) else m for m in (flair_model, tagger)]
        return save_bundle(with_tagger(*models), target, config)
    if isinstance(flair_model, (str, os.PathLike)):
        source = Path(flair_model)
        if source.is_dir() and (source / MANIFEST_FILE).is_file():
            verify_bundle(source)
            shutil.copytree(source, target)
            manifest = verify_bundle(target)
            _, digest = read_manifest(target)
            if manifest["backend"] != config.backend.value:
                log.warning(
                    "Logging the bundle %s as it is (backend %s); the export options given here (backend %s) do not apply.",
                    source,
                    manifest["backend"],
                    config.backend.value,
                )
            return BundleInfo(path=target, manifest_sha256=digest, manifest=manifest)
        flair_model = load_flair_model(source)
    return save_bundle(flair_model, target, config)


def save_model(
    flair_model: Any,
    path: str | os.PathLike,
    *,
    backend: str | Backend = Backend.ONNX,
    providers: Sequence[str] | None = None,
    session_options: Mapping[str, Any] | None = None,
    example_sentences: Sequence[str] | None = None,
    parity_sentences: Sequence[str] | None = None,
    parity: ParityConfig | None = None,
    onnx: OnnxOptions | None = None,
    torchscript: TorchScriptOptions | None = None,
    strict_providers: bool = False,
    export_config: ExportConfig | None = None,
    mlflow_model: Any = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Sequence[str] | None = None,
    extra_pip_requirements: Sequence[str] | None = None,
    code_paths: Sequence[str] | None = None,
    conda_env: Any = None,
    metadata: Mapping[str, Any] | None = None,
    tagger: Any = None,
    model_config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Save a Flair model as an MLflow model directory at ``path``.

    Every keyword is checked: an unknown one raises ``TypeError`` naming the closest valid one, and an export
    option given flat (``quantize="int8"``) is refused with its typed form (``onnx=OnnxOptions(quantize="int8")``).
    ``validate_serving_input``, which MLflow's ``Model.log`` reads and passes on, is left to MLflow.

    Args:
        flair_model: a Flair ``SequenceTagger``, the path of a Flair ``.pt`` file, or a bundle directory.
        path: the target directory (must not exist).
        backend: ``"onnx"`` (default), ``"torchscript"`` or ``"torch"``.
        providers: ONNX Runtime execution providers, recorded and used on load.
        session_options: ``intra_op_num_threads``, ``inter_op_num_threads``, ``graph_optimization_level``,
            ``allow_spinning``.
        example_sentences / parity_sentences: sentences for tracing / for the parity gate (else the shipped
            check set, see ``ExportConfig``).
        parity: parity gate settings (thresholds, a labeled CoNLL set, force).
        onnx / torchscript: the typed options of those backends (``OnnxOptions``, ``TorchScriptOptions``).
        strict_providers: fail on load when a recorded execution provider is missing.
        export_config: a complete :class:`ExportConfig`; replaces all the export arguments above.
        mlflow_model, signature, input_example, pip_requirements, extra_pip_requirements, code_paths,
        conda_env, metadata: as in every MLflow flavor.
        tagger: with a ``RelationExtractor`` as ``flair_model``, the tagger that finds its entities (a model or a
            ``.pt`` path): both are saved as one model that answers ``{"entities": [...], "relations": [...]}``.
        model_config: the model's serving settings (adaptive batching: ``max_batch_texts``, ``max_wait_ms``,
            ``adaptive_batching``; ``max_texts``, thread counts, ...), checked now and written into ``MLmodel``
            as its defaults; ``flair-mlflow inspect MODEL`` lists them with their meaning.
    """
    from mlflow.utils.environment import _validate_env_arguments
    from mlflow.utils.model_utils import _validate_and_prepare_target_save_path

    _refuse_unknown_keywords("save_model", kwargs, _keywords(save_model))
    _validate_env_arguments(conda_env, pip_requirements, extra_pip_requirements)
    check_model_config(model_config)  # before the export: a wrong setting costs nothing
    path = Path(os.path.abspath(path))
    config = _export_config(
        export_config,
        backend=backend,
        providers=providers,
        session_options=session_options,
        strict_providers=strict_providers,
        onnx=onnx,
        torchscript=torchscript,
        parity=parity,
        example_sentences=example_sentences,
        parity_sentences=parity_sentences,
    )
    files = _ModelFiles(
        mlflow_model=mlflow_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        code_paths=code_paths,
        conda_env=conda_env,
        metadata=metadata,
        model_config=model_config,
    )
    _validate_and_prepare_target_save_path(str(path))
    try:
        info = _place_bundle(flair_model, path / BUNDLE_SUBPATH, config, tagger)
        _write_model_dir(path, info, files)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


@dataclasses.dataclass(frozen=True)
class _ModelFiles:
    """``save_model``'s arguments for what surrounds the bundle: MLflow's own, as every flavor takes them."""

    mlflow_model: Any
    signature: Any
    input_example: Any
    pip_requirements: Sequence[str] | None
    extra_pip_requirements: Sequence[str] | None
    code_paths: Sequence[str] | None
    conda_env: Any
    metadata: Mapping[str, Any] | None
    model_config: Mapping[str, Any] | None = None


def _write_model_dir(path: Path, info: Any, given: _ModelFiles) -> None:
    """Everything around the bundle at ``path``: ``code/``, the example, environments and ``MLmodel``."""
    from mlflow.models import Model
    from mlflow.models.model import MLMODEL_FILE_NAME

    code_subpath = _copy_code(path, given.code_paths)
    mlflow_model = given.mlflow_model if given.mlflow_model is not None else Model()
    _describe_model(mlflow_model, path, info.manifest, given)
    _add_flavors(mlflow_model, info, code_subpath, given.model_config)
    _write_environment(path, info.manifest["backend"], served_path(info.manifest, given.model_config), given)
    # the bundle is covered by its manifest; every other file (code/, requirements, examples) by this record
    mlflow_model.flavors[FLAVOR_NAME][FILES_RECORD_KEY] = outside_bundle_digests(path, BUNDLE_SUBPATH)
    mlflow_model.save(str(path / MLMODEL_FILE_NAME))


def _describe_model(mlflow_model: Any, path: Path, manifest: Mapping[str, Any], given: _ModelFiles) -> None:
    """Signature (ours by default), input example (two example texts by default) and metadata."""
    import pandas as pd
    from mlflow.models.utils import _save_example

    signature, input_example = given.signature, given.input_example
    task = manifest["task"]
    mlflow_model.signature = signature if signature is not None else default_signature(task, manifest.get("tasks"))
    if input_example is None:  # a column per input of the task's spec (a pair's second text: the texts reversed)
        input_example = pd.DataFrame(dict(zip(spec(task).columns, (EXAMPLE_TEXTS, EXAMPLE_TEXTS[::-1]))))
    _save_example(mlflow_model, input_example, str(path))
    if given.metadata is not None:
        mlflow_model.metadata = dict(given.metadata)


def _add_flavors(mlflow_model: Any, info: Any, code_subpath: str, model_config: Mapping[str, Any] | None) -> None:
    """The pyfunc flavor and ours, with the backend, the manifest's digest, its settings and versions."""
    from mlflow.pyfunc import add_to_model
    from mlflow.utils.environment import _CONDA_ENV_FILE_NAME, _PYTHON_ENV_FILE_NAME

    manifest = info.manifest
    add_to_model(
        mlflow_model,
        loader_module=LOADER_MODULE,
        data=BUNDLE_SUBPATH,
        code=code_subpath,
        conda_env=_CONDA_ENV_FILE_NAME,
        python_env=_PYTHON_ENV_FILE_NAME,
        # MLflow passes on only the model_config keys declared here: declare every one we accept.
        model_config=_default_model_config(manifest, model_config),
    )
    versions = manifest.get("versions", {})
    mlflow_model.add_flavor(
        FLAVOR_NAME,
        bundle=BUNDLE_SUBPATH,
        code=code_subpath,
        backend=manifest["backend"],
        task=manifest["task"],
        **({"tasks": manifest["tasks"]} if manifest.get("tasks") else {}),  # a multitask model's, in order
        model_class=manifest["model_class"],
        tag_type=manifest.get("tag_type"),
        manifest_sha256=info.manifest_sha256,
        **flavor_metadata(manifest),  # providers, session options, opset, precision, optimization, quantization
        serving_path=served_path(manifest, model_config),  # the model_config's serving_path may force flair
        flair_version=versions.get("flair"),
        torch_version=versions.get("torch"),
        transformers_version=versions.get("transformers"),
        onnxruntime_version=versions.get("onnxruntime"),
        parity=_parity_summary(manifest.get("parity")),
    )


def _write_environment(path: Path, backend: str, serving_path: str, given: _ModelFiles) -> None:
    """conda.yaml, requirements.txt (constraints.txt) and python_env.yaml, as MLflow's own flavors write them (for a
    model served lean: without Flair, torch and transformers)."""
    import yaml
    from mlflow.utils.environment import (
        _CONDA_ENV_FILE_NAME,
        _CONSTRAINTS_FILE_NAME,
        _PYTHON_ENV_FILE_NAME,
        _REQUIREMENTS_FILE_NAME,
        _process_conda_env,
        _process_pip_requirements,
        _PythonEnv,
    )
    from mlflow.utils.file_utils import write_to

    conda_env, pip_requirements = given.conda_env, given.pip_requirements
    if conda_env is None:
        default_reqs = None if pip_requirements else get_default_pip_requirements(backend, serving_path)
        conda_env, pip_reqs, pip_constraints = _process_pip_requirements(
            default_reqs, pip_requirements, given.extra_pip_requirements
        )
    else:
        conda_env, pip_reqs, pip_constraints = _process_conda_env(conda_env)
    with open(path / _CONDA_ENV_FILE_NAME, "w") as f:
        yaml.safe_dump(conda_env, stream=f, default_flow_style=False)
    if pip_constraints:
        write_to(str(path / _CONSTRAINTS_FILE_NAME), "\n".join(pip_constraints))
    write_to(str(path / _REQUIREMENTS_FILE_NAME), "\n".join(pip_reqs))
    _PythonEnv.current().to_yaml(str(path / _PYTHON_ENV_FILE_NAME))


def _log_model_keywords() -> list[str]:
    """What ``log_model`` takes: its own keywords, ``save_model``'s and those of MLflow's ``Model.log``."""
    from mlflow.models import Model

    own, saved = _keywords(log_model), _keywords(save_model, "path", "mlflow_model")
    return list(dict.fromkeys([*own, *saved, *_keywords(Model.log, "cls", "artifact_path", "flavor")]))


def log_model(flair_model: Any, name: str | None = None, *, registered_model_name: str | None = None, **kwargs: Any):
    """Log a Flair model as an MLflow model of this flavor (MLflow 3 ``name=`` form); returns ``ModelInfo``.

    Takes :func:`save_model`'s keywords (``backend``, ``onnx``, ``export_config``, ``signature``, ...) and those
    of MLflow's ``Model.log`` (``run_id``, ``tags``, ``params``, ``await_registration_for``, ``model_type``,
    ``step``, ``model_id``, ``resources``, ``auth_policy``, ``prompts``, ``validate_serving_input``); anything
    else raises ``TypeError`` before a run is touched. A registered version is verified where it landed and
    its digests recorded in the registry.
    """
    from mlflow.models import Model

    if "artifact_path" in kwargs:  # MLflow 2's spelling, which Model.log of MLflow 3 also takes: say which to use
        raise TypeError(
            f"log_model() takes the logged model's name as name= (MLflow 3), not artifact_path= (MLflow 2): use "
            f"name={kwargs['artifact_path']!r}; nothing was logged."
        )
    _refuse_unknown_keywords("log_model", kwargs, _log_model_keywords())
    info = Model.log(
        artifact_path=None,
        name=name or "model",
        flavor=sys.modules[__name__],
        flavor_name=LOADER_MODULE,  # the name MLflow records for the logged model (that of the loader package)
        registered_model_name=registered_model_name,
        flair_model=flair_model,
        **kwargs,
    )
    if registered_model_name and info.registered_model_version:
        # verify what landed in the artifact store and record its digests in the registry
        seal_version(registered_model_name, str(info.registered_model_version))
    return info
