"""The ``flair-mlflow`` command line: a thin layer that builds config objects and calls the library."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import click

from exporter.bundle.save import refuse_existing_output, save_bundle
from exporter.config import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    INT8_RECIPES,
    OPTIMIZATION_LEVELS,
    PRECISIONS,
    QUANTIZATIONS,
    SERVING_PATHS,
    Backend,
    ExportConfig,
    OnnxOptions,
    ParityConfig,
    RuntimeOptions,
    TorchScriptOptions,
    fp16_unavailable,
)
from exporter.errors import BundleError, ConfigError, FlairMlflowError
from exporter.format.manifest import MANIFEST_FILE, read_manifest
from exporter.format.modelfile import DropDictionaryChatter, load_flair_model
from exporter.format.specs import spec
from exporter.format.tasks import with_tagger
from exporter.tools.demo import demo_classifier_path, demo_model_path, train_tagger_on_conll
from exporter.tools.int8_report import (
    RecipeReportConfig,
    compare_recipes,
    log_recipes_to_mlflow,
    measured_record,
    recipe_markdown,
)
from mlflow_flavor.cli.job import DEMO, DEMO_CLASSIFIER, resolve_model_path, run_log_job
from mlflow_flavor.cli.terms import PARAM_FLAGS, in_cli_terms, params_in_cli_terms
from mlflow_flavor.fetch import fetch_model, is_model_uri, locate_reference, verify_model_dir, verify_reference
from mlflow_flavor.loading import check_model_config
from mlflow_flavor.mlmodel import BUNDLE_SUBPATH, FILES_RECORD_KEY, FLAVOR_NAME
from mlflow_flavor.redact import redact
from mlflow_flavor.registry.evaluate import EvaluationConfig, evaluate_model, load_reference
from mlflow_flavor.registry.promote import PromotionConfig
from mlflow_flavor.registry.promote import promote as run_promotion
from mlflow_flavor.tools.inspect import describe_model
from mlflow_flavor.tools.lean_check import LeanCheckConfig, lean_check_report, run_lean_check
from mlflow_flavor.tools.loadtest import BACKENDS as LOADTEST_BACKENDS
from mlflow_flavor.tools.loadtest import BATCHING as LOADTEST_BATCHING
from mlflow_flavor.tools.loadtest import SERVERS as LOADTEST_SERVERS
from mlflow_flavor.tools.loadtest import LoadTestConfig, load_test_report, run_load_test
from mlflow_flavor.tools.mlserver_config import MLServerConfig, write_mlserver_config

#: the backends to choose from (``flair-onnx`` is chosen by itself for a model from Flair's own ``export_onnx``)
BACKENDS = [b.value for b in Backend if b is not Backend.FLAIR_ONNX]
#: the CLI's word for an option left off (``OnnxOptions`` reads it as None)
NONE = "none"
_ONNX = OnnxOptions()
_RUNTIME = RuntimeOptions()


def _setup_logging(verbose: bool) -> None:
    import coloredlogs

    level = logging.DEBUG if verbose else logging.INFO
    coloredlogs.install(level=level, fmt="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("alembic", "urllib3", "botocore", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _progress(logger: str) -> Any:
    """A library's step reports as log lines of its logger: one format for every line of ours on stderr."""
    return logging.getLogger(logger).info


def _flair_logs_to_stderr() -> None:
    """Flair logs to stdout; the commands that print JSON keep stdout for it."""
    import flair  # noqa: F401  (configures the "flair" logger)

    flair_log = logging.getLogger("flair")
    for handler in flair_log.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    if not any(isinstance(f, DropDictionaryChatter) for f in flair_log.filters):
        chatter = DropDictionaryChatter()  # "SequenceTagger predicts: Dictionary with 17 tags: ..."
        flair_log.addFilter(chatter)
        context = click.get_current_context(silent=True)
        if context is not None:  # for this command only (a test's CliRunner shares the process)
            context.call_on_close(lambda: flair_log.removeFilter(chatter))


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:
            if not _ours_to_say(e):
                raise
            click.echo(f"Error: {in_cli_terms(redact(str(e)), project=_from_project(ctx))}", err=True)
            ctx.exit(2)


def _ours_to_say(error: Exception) -> bool:
    """Whether ``error`` is a refusal to print in one line (ours, or MLflow's: checked without importing MLflow,
    seconds, for commands that stop before they need it), rather than a bug to show with its traceback."""
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    return isinstance(error, FlairMlflowError) or bool(
        mlflow_errors and isinstance(error, mlflow_errors.MlflowException)
    )


def _from_project(ctx: click.Context | None = None) -> bool:
    """Whether the MLflow project runs this command (its messages then name ``-P`` parameters)."""
    ctx = ctx or click.get_current_context()
    return bool((ctx.find_root().obj or {}).get("from_project"))


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option(
    "-C",
    "--directory",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Run as if started in DIRECTORY: relative paths resolve against it (the MLflow project passes the "
    "directory `mlflow run` was started in).",
)
@click.option("--from-project", is_flag=True, hidden=True, help="Run by the MLflow project: errors name -P parameters.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, directory: str | None, from_project: bool) -> None:
    """Export Flair models to accelerated backends and govern them with MLflow."""
    ctx.obj = {"from_project": from_project}
    _setup_logging(verbose)
    if directory:
        previous = os.getcwd()
        os.chdir(directory)
        ctx.call_on_close(lambda: os.chdir(previous))  # the process (a test's CliRunner) gets its directory back


def _read_lines(path: str | None) -> list[str]:
    if not path:
        return []
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class _OptionalFile(click.Path):
    """An existing file, or the empty string for none (how ``mlflow run -P`` leaves a path parameter unset)."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in ("", None):
            return None
        return super().convert(value, param, ctx)


_OPTIONAL_FILE = _OptionalFile()

#: the options of ``export`` and ``log`` that build the export config (:func:`_export_config`)
_EXPORT_OPTIONS = [
    click.option("--backend", type=click.Choice(BACKENDS), default=Backend.ONNX.value, show_default=True),
    click.option("--opset", type=int, default=_ONNX.opset, show_default=True, help="ONNX opset."),
    click.option(
        "--optimize",
        type=click.Choice([NONE, *OPTIMIZATION_LEVELS]),
        default=_ONNX.optimize or NONE,
        show_default=True,
        help="ONNX Runtime transformer optimizer level.",
    ),
    click.option(
        "--quantize",
        type=click.Choice([NONE, *QUANTIZATIONS]),
        default=_ONNX.quantize or NONE,
        show_default=True,
        help="An int8 recipe (onnx); with --backend torchscript, int8: PyTorch's int8 of Flair's character LMs.",
    ),
    click.option(
        "--per-channel/--per-tensor", default=_ONNX.per_channel, show_default=True, help="int8 weight granularity."
    ),
    click.option("--precision", type=click.Choice(PRECISIONS), default=_ONNX.precision, show_default=True),
    click.option("--fp16-fallback", is_flag=True, help="Export fp32 with a warning where CUDA is missing."),
    click.option("--external-data", is_flag=True, help="Store ONNX weights in an external-data file."),
    click.option("--force-max-length", is_flag=True, help="TorchScript: pad to the maximum length (static shapes)."),
    click.option("--strict-providers", is_flag=True, help="Refuse to load where a provider is missing."),
    click.option(
        "--gold-conll",
        type=_OPTIONAL_FILE,
        help="Labeled two-column CoNLL set for the parity gate (its sentences become the check set).",
    ),
    click.option("--provider", "providers", multiple=True, help="ONNX Runtime execution provider (repeatable)."),
    click.option(
        "--intra-op-threads", type=int, default=_RUNTIME.intra_op_num_threads, show_default=True, help="0: ORT decides."
    ),
    click.option(
        "--encoder-workers",
        type=int,
        default=_RUNTIME.encoder_workers,
        show_default=True,
        help="Run each batch in this many parts at once (with --intra-op-threads 1: one per core).",
    ),
    click.option(
        "--max-call-rows",
        type=click.IntRange(0),
        default=_RUNTIME.max_call_rows,
        show_default=True,
        help="Most rows per encoder call (1: each text alone, batch-independent int8-dynamic; 0: buckets decide).",
    ),
    click.option(
        "--length-buckets/--no-length-buckets",
        default=_RUNTIME.length_buckets,
        show_default=True,
        help="Group each batch by subtoken length so that short sentences skip long ones' padding.",
    ),
    click.option(
        "--batch-invariant/--no-batch-invariant",
        default=_RUNTIME.batch_invariant,
        help="A text's answer bit for bit the same in any batch (default: on with length buckets).",
    ),
    click.option(
        "--serving-path",
        type=click.Choice(SERVING_PATHS),
        default=_RUNTIME.serving_path,
        show_default=True,
        help="Serve lean (ONNX Runtime + tokenizers, no Flair or torch) where the model can (auto), always with "
        "Flair (flair: the model's requirements keep Flair and torch), or refuse what cannot serve lean (lean).",
    ),
    click.option(
        "--parity-sentences",
        type=_OPTIONAL_FILE,
        help="Your own check set: a text file, one text per line (default: 128 texts of the shipped set).",
    ),
    click.option(
        "--min-agreement",
        type=click.FloatRange(0, 1),
        default=None,
        help="Share of sentences with identical entities required (default 1.0 lossless, none lossy).",
    ),
    click.option("--force", is_flag=True, help="Record a failing parity report instead of stopping."),
]


def _export_options(f):
    for option in reversed(_EXPORT_OPTIONS):
        f = option(f)
    return f


#: the option that sets each config field, for a config's refusal (``ConfigError.option``)
_OPTION_OF_FIELD = {
    "opset": "--opset",
    "precision": "--precision / --quantize",
    "quantize": "--quantize",
    "force_max_length": "--force-max-length",
    "providers": "--provider",
    "intra_op_num_threads": "--intra-op-threads",
    "encoder_workers": "--encoder-workers",
    "batch_invariant": "--batch-invariant",
    "serving_path": "--serving-path",
    "min_tag_agreement": "--min-agreement",
    "gold_conll": "--gold-conll",
}


def _export_config(options: Mapping[str, Any]):
    """The :class:`ExportConfig` of the export options' values (click's parameters of ``export`` and ``log``),
    checked before anything slow runs: a refusal names the option, ``--precision fp16`` is checked for CUDA."""
    try:
        config = _build_export_config(options)
    except ConfigError as e:
        if e.option not in _OPTION_OF_FIELD:
            raise
        raise click.BadParameter(
            in_cli_terms(str(e), project=_from_project()), param_hint=_OPTION_OF_FIELD[e.option]
        ) from None
    _check_fp16(config)
    return config


def _check_fp16(config) -> None:
    """``--precision fp16`` runs on ONNX Runtime's CUDA provider: refuse in the CLI's terms, before any loading."""
    if config.backend is not Backend.ONNX or config.onnx.precision != "fp16" or config.onnx.fp16_fallback:
        return
    why = fp16_unavailable(config.runtime.providers, providers_named="the --provider values")
    if why is None:
        return
    raise click.UsageError(
        f"--precision fp16 runs on ONNX Runtime's {CUDA_PROVIDER}, which {why}. Export fp16 on a machine with CUDA "
        f"with --provider {CUDA_PROVIDER} --provider {CPU_PROVIDER}, or add --fp16-fallback to export fp32 instead."
    )


def _build_export_config(options: Mapping[str, Any]):
    providers = options["providers"]
    runtime = RuntimeOptions(
        intra_op_num_threads=options["intra_op_threads"],
        encoder_workers=options["encoder_workers"],
        length_buckets=options["length_buckets"],
        max_call_rows=options["max_call_rows"],
        batch_invariant=options["batch_invariant"],
        serving_path=options["serving_path"],
        strict_providers=options["strict_providers"],
        **({"providers": tuple(providers)} if providers else {}),
    )
    onnx_keys = ("opset", "optimize", "quantize", "per_channel", "precision", "fp16_fallback", "external_data")
    onnx = {key: options[key] for key in onnx_keys}
    # --quantize names the onnx backend's recipe, or for torchscript PyTorch's int8 of character language models
    scripted = Backend.parse(options["backend"]) is Backend.TORCHSCRIPT
    quantize = onnx.pop("quantize") if scripted else None
    return ExportConfig(
        backend=options["backend"],
        onnx=OnnxOptions(**onnx),
        torchscript=TorchScriptOptions(force_max_length=options["force_max_length"], quantize=quantize),
        runtime=runtime,
        parity=ParityConfig(
            min_tag_agreement=options["min_agreement"], force=options["force"], gold_conll=options["gold_conll"]
        ),
        parity_sentences=tuple(_read_lines(options["parity_sentences"])),
    )


_TAGGER_OPTION = click.option(
    "--tagger",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With a RelationExtractor as the model: the .pt of the tagger that finds its entities (both become one "
    "model answering entities and relations).",
)


@main.command()
@click.argument("model")
@click.argument("output", type=click.Path(file_okay=False))
@_export_options
@_TAGGER_OPTION
def export(model, output, tagger, **options):
    """Export MODEL (a Flair .pt path, or 'demo') into a bundle directory OUTPUT."""
    config = _export_config(options)  # every check before the seconds of loading Flair and the model
    _check_output(Path(output))
    _check_model(model)
    _flair_logs_to_stderr()
    flair_model = load_flair_model(resolve_model_path(model))
    if tagger is not None:
        flair_model = with_tagger(flair_model, load_flair_model(tagger))
    info = save_bundle(flair_model, output, config)
    summary = {
        "bundle": str(info.path),
        "manifest_sha256": info.manifest_sha256,
        "parity": _short(info.manifest.get("parity")),
    }
    click.echo(json.dumps(summary, indent=2))


def _check_output(target: Path) -> None:
    """A bundle goes into a new or empty directory: refuse another before anything slow runs."""
    try:
        refuse_existing_output(target.absolute())
    except BundleError as e:
        raise click.BadParameter(str(e), param_hint="OUTPUT") from None


def _check_model(model: str) -> None:
    """Refuse a model path that does not exist before anything slow runs (the demo models are built later)."""
    if model not in (DEMO, DEMO_CLASSIFIER):
        resolve_model_path(model)


def _short(report):
    if not report:
        return None
    return {k: v for k, v in report.items() if k != "worst"}


def _pair_options(command: Callable) -> Callable:
    """``--pair [true|false]`` and ``--no-pair`` (the MLflow project passes ``--pair {pair}``)."""
    command = click.option(
        "--no-pair", is_flag=True, help="Move only the stage / alias named (the same as --pair false)."
    )(command)
    return click.option(
        "--pair",
        type=click.BOOL,
        is_flag=False,
        flag_value=True,
        default=True,
        show_default=True,
        help="Also move the other name of the same place where it is in use (an alias production alone moves the "
        "Production stage too, and the reverse), so that models:/NAME/Production and models:/NAME@production agree.",
    )(command)


@main.command("log")
@click.option(
    "--model",
    default="demo",
    show_default=True,
    help="A Flair .pt path, a bundle directory, 'demo' or 'demo-classifier'.",
)
@_export_options
@click.option("--name", default="model", show_default=True, help="The logged model's name.")
@click.option("--registered-model-name", default="ner", show_default=True, help="Empty string: do not register.")
@click.option("--stage", default="Production", show_default=True, help="Empty string: no stage transition.")
@click.option("--alias", default="production", show_default=True, help="Empty string: no alias.")
@_pair_options
@click.option("--experiment-name", default=None, help="Experiment to log into (when no run is active).")
@click.option("--tracking-uri", default=None, help="Defaults to MLFLOW_TRACKING_URI, else sqlite:///mlflow.db.")
@_TAGGER_OPTION
@click.option(
    "--model-config",
    "model_config",
    multiple=True,
    metavar="KEY=VALUE",
    help="A serving setting written into the model (repeatable), e.g. max_wait_ms=5 or adaptive_batching=false; "
    "`flair-mlflow inspect MODEL` lists them.",
)
def log_cmd(
    model,
    name,
    registered_model_name,
    stage,
    alias,
    pair,
    no_pair,
    experiment_name,
    tracking_uri,
    tagger,
    model_config,
    **options,
):
    """Export a model, log it, register a new version, move it to a stage and set an alias."""
    config = _export_config(options)  # every check before the seconds of importing MLflow and Flair
    settings = _settings(model_config)
    _check_model(model)
    import mlflow

    _flair_logs_to_stderr()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    result = run_log_job(
        model,
        backend=options["backend"],
        name=name,
        registered_model_name=registered_model_name or None,
        stage=stage or None,
        alias=alias or None,
        pair=pair and not no_pair,
        experiment_name=experiment_name,
        export_config=config,
        **({"tagger": tagger} if tagger else {}),
        **({"model_config": settings} if settings else {}),
    )
    click.echo(json.dumps(result.__dict__, indent=2, default=str))


def _settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--model-config KEY=VALUE`` options as a checked ``model_config`` (values read as JSON: 5, 2.5, true)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. max_wait_ms=5).", param_hint="--model-config")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value  # a word: a string setting (graph_optimization_level=basic)
    try:
        check_model_config(settings, where="--model-config")
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--model-config") from None
    return settings


@main.command()
@click.argument("model")
@click.option("--tracking-uri", default=None, help="For models:/ URIs; defaults to MLFLOW_TRACKING_URI.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def inspect(model, tracking_uri, as_json):
    """Show what MODEL is (class, task, backend, parity) and how it serves: the request params it takes and each
    model_config setting with its logged value, its default and its meaning."""
    facts = describe_model(model, tracking_uri=tracking_uri)
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    for key in (
        "model",
        "model_class",
        "task",
        "tasks",
        "backend",
        "serving_path",
        "serving_path_reason",
        "parity",
        "params",
    ):
        if facts.get(key) is not None:
            value = facts[key]
            click.echo(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if facts["model_config"] is None:
        click.echo("model_config: none (a bundle; an MLflow model made from it has them)")
        return
    click.echo("model_config (set with save_model(model_config=...), flair-mlflow log --model-config KEY=VALUE, or")
    click.echo("  at serving time MLFLOW_PYFUNC_INFERENCE_CONFIG='{\"KEY\": VALUE}'):")
    width = max(len(k) for k in facts["model_config"])
    for key, setting in facts["model_config"].items():
        mark = "" if setting["value"] == setting["default"] else f" (default {_shown(setting['default'])})"
        value = _shown(setting["value"])
        if setting["value"] is None and "in_force" in setting:  # batch_invariant: null is "as length_buckets"
            value += f" ({_shown(setting['in_force'])} as length_buckets)"
        click.echo(f"  {key:<{width}}  {value}{mark}: {setting['meaning']}")


def _shown(value: Any) -> str:
    """A setting's value as model_config takes it (JSON: true, null), not Python's spelling."""
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


@main.command()
@click.option(
    "--rebuild",
    is_flag=True,
    help="Train the demo model from scratch (minutes) instead of building it from its shipped head.",
)
@click.option("--classifier", is_flag=True, help="The demo topic classifier instead of the demo tagger.")
@click.option(
    "--train-conll",
    type=click.Path(exists=True, dir_okay=False),
    help="Train the demo tagger's recipe on this CoNLL file instead (e.g. wikiann-en/train.conll); needs --output.",
)
@click.option("--output", type=click.Path(dir_okay=False), help="Where to save the tagger trained on --train-conll.")
@click.option("--sentences", type=int, default=6000, show_default=True, help="Training sentences from --train-conll.")
@click.option("--epochs", type=int, default=10, show_default=True, help="Epochs for --train-conll.")
def demo(rebuild, classifier, train_conll, output, sentences, epochs):
    """Build (or find in the cache) the demo tagger or classifier and print its path."""
    if train_conll:
        if not output:
            raise click.UsageError("--train-conll needs --output (the .pt file to write).")
        click.echo(str(train_tagger_on_conll(Path(train_conll), Path(output), sentences=sentences, max_epochs=epochs)))
        return
    click.echo(str((demo_classifier_path if classifier else demo_model_path)(rebuild=rebuild)))


@main.command()
@click.argument("model")
@click.option("--tracking-uri", default=None, help="For models:/ URIs; defaults to MLFLOW_TRACKING_URI.")
def verify(model, tracking_uri):
    """Verify every checksum of MODEL: a bundle directory, an MLflow model directory (every file, and the digest
    MLmodel records) or a models:/ URI (downloaded afresh, also checked against the registry's digests).

    Prints how many files were checked: for an MLflow model, the bundle's files, its bundle.json and the files
    outside it (code/, requirements, environment files, examples), which MLmodel records."""
    click.echo(_verify(model, tracking_uri))


def _verify(model: str, tracking_uri: str | None) -> str:
    """Verify ``model``; say how many files were checked, and against what (:func:`verify_reference` returns the
    bundle's manifest only: an MLflow model's other files are counted from the record in its ``MLmodel``)."""
    path = Path(model).expanduser()
    if is_model_uri(model) and not path.exists():
        # as verify_reference does: downloaded afresh into a temporary copy of its own, verified there (the bundle,
        # every recorded file, the registry's digests), then removed
        fetched = fetch_model(model, tracking_uri=tracking_uri, use_cache=False)
        try:
            return _model_verified(fetched, redact(model))
        finally:
            shutil.rmtree(fetched.parent, ignore_errors=True)
    where, manifest = verify_reference(model, tracking_uri=tracking_uri)
    if not (path / MANIFEST_FILE).is_file():
        return _model_verified(path, where)
    return f"OK: {len(manifest['files'])} files verified in {where}"  # a bundle: each against its bundle.json


def _model_verified(directory: Path, where: str) -> str:
    """What verifying an MLflow model directory checked: the bundle's files against its manifest, the manifest
    against the digest ``MLmodel`` records, every other file (``code/``, requirements, environments, examples)
    against the record ``save_model`` wrote into ``MLmodel``."""
    from mlflow.models import Model

    flavor = Model.load(str(directory)).flavors[FLAVOR_NAME]
    bundle_files = len(read_manifest(directory / flavor.get("bundle", BUNDLE_SUBPATH))[0]["files"])
    manifest = 1 if flavor.get("manifest_sha256") else 0
    recorded = flavor.get(FILES_RECORD_KEY)
    if not isinstance(recorded, dict):  # saved by an earlier flair-mlflow (verify_model_dir warned)
        total = bundle_files + manifest
        return (
            f"OK: {bundle_files} bundle files and {MANIFEST_FILE} (no record of the model's other files, which were "
            f"not checked): {total} files verified in {where}"
        )
    total = bundle_files + manifest + len(recorded)
    return (
        f"OK: {bundle_files} bundle files, {MANIFEST_FILE} and {len(recorded)} others ({_file_groups(recorded)}): "
        f"{total} files verified in {where}"
    )


def _file_groups(names) -> str:
    """Files named by their relative paths, said short: a folder once with its count (``code/ (52)``), files as they
    are."""
    groups: dict[str, int] = {}
    for name in sorted(names):
        top, sep, _ = name.partition("/")
        groups[top + sep] = groups.get(top + sep, 0) + 1
    return ", ".join(f"{g} ({n})" if g.endswith("/") else g for g, n in groups.items())


@main.command()
@click.argument("model")
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "text_file",
    type=click.Path(exists=True, allow_dash=True, dir_okay=False),
    help="Texts from a file, one per line ('-': standard input).",
)
@click.option("--min-score", type=click.FloatRange(0, 1), default=None, help="Drop answers scored below this.")
@click.option("--return-tokens", is_flag=True, default=None, help="Taggers: also return per-token tags.")
@click.option("--split-sentences", is_flag=True, default=None, help="Taggers: split each text into sentences.")
@click.option("--top-k", type=click.IntRange(0, 1024), default=None, help="Classifiers: that many labels.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Zero-shot (TARS) models: answer for this label instead of the current task's (repeat for several).",
)
@click.option("--mini-batch-size", type=click.IntRange(1, 1024), default=None)
@click.option("--tracking-uri", default=None, help="For models:/ URIs; defaults to MLFLOW_TRACKING_URI.")
def predict(
    model, texts, text_file, min_score, return_tokens, split_sentences, top_k, labels, mini_batch_size, tracking_uri
):
    """Answer TEXTS (or the lines of --file; '-', as a text or as the file, reads them from standard input) with
    MODEL as JSON.

    MODEL is a models:/ URI (fetched once, verified, cached), an MLflow model directory or a bundle
    directory written by `flair-mlflow export`. The options are the pyfunc's params. A model of text pairs
    takes arguments two at a time (TEXT TEXT_PAIR ...) and lines as 'text<TAB>text_pair'.
    """
    given_texts = texts
    if "-" in texts:  # as Unix tools read it: standard input, one text per line, where the '-' stands
        if text_file == "-":
            raise click.UsageError("Standard input can be read once: give '-' as a text or as --file, not both.")
        index = texts.index("-")
        texts = texts[:index] + _lines("-") + tuple(t for t in texts[index + 1 :] if t != "-")
    if text_file is not None:
        texts = tuple(texts) + _lines(text_file)
    if not texts:
        raise click.UsageError("Give texts as arguments, or --file PATH (one text per line; '-' reads stdin).")
    given = {
        "min_score": min_score,
        "return_tokens": return_tokens,
        "split_sentences": split_sentences,
        "top_k": top_k,
        "candidate_labels": list(labels) or None,
        "mini_batch_size": mini_batch_size,
    }
    params = {k: v for k, v in given.items() if v is not None}
    located = locate_reference(model, tracking_uri=tracking_uri)  # fetched and verified before Flair is imported
    _flair_logs_to_stderr()
    loaded = load_reference(model, located=located)
    inputs = (
        _pairs(texts, from_lines=text_file is not None or "-" in given_texts)
        if spec(loaded.task).pairs
        else list(texts)
    )
    _refuse_undeclared(loaded.predictor, params)
    try:
        answers = loaded.predictor.predict(inputs, params=params or None)
    except Exception as e:  # the pyfunc's refusal (an MlflowException): said with predict's flags
        if not _ours_to_say(e):
            raise
        raise click.UsageError(params_in_cli_terms(redact(getattr(e, "message", str(e))))) from None
    click.echo(json.dumps(answers, indent=2, ensure_ascii=False))


def _refuse_undeclared(predictor: Any, params: Mapping[str, Any]) -> None:
    """A param the model's signature does not declare (a model logged by an older flair-mlflow) would be dropped by
    MLflow with a warning: refuse it instead, saying why."""
    signature = getattr(getattr(predictor, "metadata", None), "signature", None)
    if signature is None or signature.params is None:
        return
    declared = {p.name for p in signature.params.params}
    missing = [name for name in params if name not in declared]
    if missing:
        flags = ", ".join(PARAM_FLAGS.get(name, name) for name in missing)
        raise click.UsageError(
            f"This model's signature does not declare {flags} (it was logged by an earlier flair-mlflow), so MLflow "
            "would ignore it: log the model again to use it."
        )


def _pairs(texts: tuple[str, ...], from_lines: bool) -> list[list[str]]:
    """A model of text pairs: arguments taken two at a time (TEXT TEXT_PAIR ...), lines of a file or of standard
    input as ``text<TAB>text_pair``."""
    if from_lines or any("\t" in text for text in texts):
        pairs = [text.split("\t", 1) for text in texts]
        missing = next((i for i, pair in enumerate(pairs) if len(pair) != 2), None)
        if missing is not None:
            raise click.UsageError(
                f"Text {missing + 1} has no tab: a model of text pairs reads lines as 'text<TAB>text_pair'."
            )
        return pairs
    if len(texts) % 2:
        raise click.UsageError(
            f"A model of text pairs takes texts two at a time (TEXT TEXT_PAIR ...); {len(texts)} were given."
        )
    return [list(texts[i : i + 2]) for i in range(0, len(texts), 2)]


def _lines(path: str) -> tuple[str, ...]:
    """The lines of a text file (``-``: standard input), one text each."""
    with click.open_file(path, encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f)


#: ``--output`` of the measuring tools: nothing is written unless asked
_REPORT_OUTPUT = click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the Markdown report into this file, replacing only its section between flair-mlflow's markers "
    "(created if missing; this repository's docs/BENCHMARKS.md holds the published ones). Default: printed only.",
)
#: ``--log-to-mlflow`` of the measuring tools: on where the user chose a tracking store (:func:`_log_to_mlflow`)
_LOG_TO_MLFLOW = click.option(
    "--log-to-mlflow/--no-log-to-mlflow",
    default=None,
    help="Log the measurements and the report as an MLflow run. Default: only where a tracking store was chosen "
    "(MLFLOW_TRACKING_URI, or MLflow's default store ./mlflow.db already in this folder); elsewhere MLflow would "
    "create ./mlflow.db and ./mlruns here, so --log-to-mlflow must ask for that.",
)


def _log_to_mlflow(flag: bool | None) -> bool:
    """``--log-to-mlflow`` as given; unset: whether a tracking store was chosen (a tracking URI set, or MLflow's
    default store in the current folder already there), so that a measurement never creates one here unasked."""
    if flag is not None:
        return flag
    import mlflow

    if mlflow.is_tracking_uri_set():
        return True
    uri, prefix = mlflow.get_tracking_uri(), "sqlite:///"
    chosen = uri.startswith(prefix) and Path(unquote(uri[len(prefix) :])).exists()
    if not chosen:
        logging.getLogger(__name__).info(
            "Not logged to MLflow: no tracking URI is set (MLFLOW_TRACKING_URI); --log-to-mlflow logs into MLflow's "
            "default store %s",
            redact(uri),
        )
    return chosen


def _say_logged(run_id: str | None) -> None:
    if run_id:
        import mlflow

        logging.getLogger(__name__).info("Logged to MLflow: run %s at %s", run_id, redact(mlflow.get_tracking_uri()))


@main.command()
@click.option("--model", default="demo", show_default=True, help="A Flair .pt path or 'demo'.")
@click.option(
    "--shape",
    default=None,
    help="Instead of --model: a random tagger of a published model's shape (ner-english, ner-english-fast).",
)
@click.option("--conll", type=click.Path(exists=True, dir_okay=False), help="Sentences from a CoNLL file.")
@click.option("--sentences", "num_sentences", type=int, default=384, show_default=True)
@click.option("--min-words", type=int, default=8, show_default=True, help="Skip shorter CoNLL sentences.")
@click.option("--batch-size", "batch_sizes", type=int, multiple=True, help="Repeatable; default 1, 8 and 32.")
@click.option(
    "--small-batch-sentences", type=int, default=96, show_default=True, help="Sentences for batches under 32."
)
@click.option("--no-flair-onnx", is_flag=True, help="Skip the anchor: Flair's own export_onnx.")
@click.option(
    "--no-pytorch-buckets", is_flag=True, help="Skip the reference row: PyTorch's encoder in flair-mlflow's path."
)
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory subprocesses.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option(
    "--repeats", type=int, default=3, show_default=True, help="Timed passes per backend (the median pass is compared)."
)
@click.option("--backend", "backends", multiple=True, help="Variant to compare (repeatable); default: all main ones.")
@_REPORT_OUTPUT
@_LOG_TO_MLFLOW
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of the Markdown report.")
def bench(
    model,
    shape,
    conll,
    num_sentences,
    min_words,
    batch_sizes,
    small_batch_sentences,
    no_flair_onnx,
    no_pytorch_buckets,
    no_memory,
    threads,
    repeats,
    backends,
    output,
    log_to_mlflow,
    as_json,
):
    """Measure predict throughput of Flair PyTorch and each backend side by side, in one run. Prints the Markdown
    report (--json: its rows); --output also writes it into a file."""
    from exporter.tools.bench import BenchConfig, run_benchmark  # lazy: imports torch and flair (exporter.runtime)

    config = BenchConfig(
        model_path=None if shape else resolve_model_path(model),
        shape=shape,
        conll=Path(conll) if conll else None,
        num_sentences=num_sentences,
        min_words=min_words,
        **({"batch_sizes": tuple(batch_sizes)} if batch_sizes else {}),
        small_batch_sentences=small_batch_sentences,
        include_flair_onnx=not no_flair_onnx,
        include_pytorch_buckets=not no_pytorch_buckets,
        measure_memory=not no_memory,
        threads=threads,
        repeats=repeats,
        **({"backends": tuple(backends)} if backends else {}),
        command="flair-mlflow " + " ".join(sys.argv[1:]),
    )
    logged = _log_to_mlflow(log_to_mlflow)
    result = run_benchmark(config, output=Path(output) if output else None, log_to_mlflow=logged)
    _say_logged(result.run_id)
    click.echo(json.dumps(result.rows, indent=2) if as_json else result.markdown)


@main.command("int8-report")
@click.option("--model", default="demo", show_default=True, help="A Flair SequenceTagger .pt path or 'demo'.")
@click.option("--conll", type=click.Path(exists=True, dir_okay=False), required=True, help="Labeled sentences.")
@click.option("--sentences", type=click.IntRange(1), default=1500, show_default=True, help="The first N of them.")
@click.option("--speed-sentences", type=click.IntRange(1), default=384, show_default=True, help="Timed at batch 1, 32.")
@click.option("--recipe", "recipes", type=click.Choice(INT8_RECIPES), multiple=True, help="Repeatable; default: all.")
@click.option(
    "--call-rows",
    type=click.IntRange(0),
    multiple=True,
    help="max_call_rows values to measure (repeatable; default 0).",
)
@click.option("--threads", type=click.IntRange(0), default=2, show_default=True)
@click.option("--optimize", type=click.Choice(list(OPTIMIZATION_LEVELS)), default=None, help="Optimizer level.")
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the Markdown table here.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    help="Also write the measurements a failed int8 gate quotes (JSON, the format of "
    "exporter/quality/data/int8_measured.json).",
)
@_LOG_TO_MLFLOW
def int8_report(
    model, conll, sentences, speed_sentences, recipes, call_rows, threads, optimize, output, record, log_to_mlflow
):
    """Compare every int8 recipe with Flair's PyTorch model and the fp32 export, side by side in one run:
    speed at batch 1 and 32, agreement, gold F1, batch independence, size. JSON rows on stdout."""
    config = RecipeReportConfig(
        model_path=resolve_model_path(model),
        conll=Path(conll),
        sentences=sentences,
        speed_sentences=speed_sentences,
        recipes=tuple(recipes),
        threads=threads,
        optimize=optimize,
        call_rows=tuple(call_rows) or (0,),
    )
    rows = compare_recipes(config, progress=_progress("exporter.tools.int8_report"))
    markdown = recipe_markdown(config, rows)
    if output:
        Path(output).write_text(markdown, encoding="utf-8")
    if record:
        Path(record).write_text(json.dumps(measured_record(config, rows), indent=2) + "\n", encoding="utf-8")
    click.echo(markdown, err=True)
    result = {"rows": rows}
    if _log_to_mlflow(log_to_mlflow):
        result["run_id"] = log_recipes_to_mlflow(config, rows, markdown)
        _say_logged(result["run_id"])
    click.echo(json.dumps(result))


@main.command()
@click.option("--model", default="demo", show_default=True, help="A Flair .pt path or 'demo'.")
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=click.Choice(LOADTEST_BACKENDS),
    help="Backend to serve (repeatable; onnx-flair: the ONNX model served by Flair's code); default: torch, onnx, int8.",
)
@click.option(
    "--batching",
    multiple=True,
    type=click.Choice(LOADTEST_BATCHING),
    help="Adaptive batching setting to compare (repeatable); default: off and on.",
)
@click.option(
    "--server",
    "servers",
    multiple=True,
    type=click.Choice(tuple(LOADTEST_SERVERS)),
    help="Server to run each setting on (repeatable; mlserver* need the mlserver extra: pip install -e "
    "'.[mlserver]' in a checkout); default: mlflow.",
)
@click.option("--clients", type=int, default=8, show_default=True, help="Concurrent clients.")
@click.option("--requests", "num_requests", type=int, default=64, show_default=True, help="Requests per client.")
@click.option("--texts-per-request", type=int, default=1, show_default=True)
@click.option("--conll", type=click.Path(exists=True, dir_okay=False), help="Texts from a CoNLL file.")
@click.option("--sentences", "num_sentences", type=int, default=256, show_default=True)
@click.option("--min-words", type=int, default=5, show_default=True, help="Skip shorter CoNLL sentences.")
@click.option(
    "--long-words", type=int, default=0, help="Also tag one text of that many words per backend (memory, time)."
)
@click.option(
    "--cold-start/--no-cold-start",
    default=True,
    show_default=True,
    help="Also time launching mlflow models serve until the first answer, beside a do-nothing pyfunc.",
)
@click.option(
    "--cold-start-env",
    type=click.Path(file_okay=False),
    default=None,
    help="Also time cold starts served from a virtual environment here, made from a lean model's requirements only.",
)
@_REPORT_OUTPUT
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of the Markdown report.")
def loadtest(
    model,
    backends,
    batching,
    servers,
    clients,
    num_requests,
    texts_per_request,
    conll,
    num_sentences,
    min_words,
    long_words,
    cold_start,
    cold_start_env,
    output,
    as_json,
):
    """In-process predict vs `mlflow models serve` under concurrent clients, adaptive batching off and on.

    Prints the Markdown report (--json: its rows); --output also writes it into a file. Nothing is logged to MLflow:
    the models are saved in a temporary folder and served from there."""
    config = LoadTestConfig(
        model_path=resolve_model_path(model),
        clients=clients,
        requests=num_requests,
        texts_per_request=texts_per_request,
        conll=Path(conll) if conll else None,
        num_sentences=num_sentences,
        min_words=min_words,
        long_words=long_words,
        cold_start=cold_start,
        cold_start_env=Path(cold_start_env) if cold_start_env else None,
        command="flair-mlflow " + " ".join(sys.argv[1:]),
        **({"backends": tuple(backends)} if backends else {}),
        **({"batching": tuple(batching)} if batching else {}),
        **({"servers": tuple(servers)} if servers else {}),
    )
    rows = run_load_test(
        config, output=Path(output) if output else None, progress=_progress("mlflow_flavor.tools.loadtest")
    )
    click.echo(json.dumps(rows, indent=2) if as_json else load_test_report(config, rows))


@main.command("lean-check")
@click.argument("env_dir", type=click.Path(file_okay=False))
@click.option(
    "--model",
    default=DEMO,
    show_default=True,
    help="The tagger: a Flair .pt or 'demo', exported here with the ONNX backend (its parity gate on --sentences "
    "texts, at most 128); or a logged model, checked as it was logged (no export): models:/NAME/VERSION, "
    "models:/NAME@ALIAS, runs:/RUN_ID/PATH or an MLflow model directory, a tagger or a classifier that serves lean.",
)
@click.option(
    "--classifier",
    default=None,
    help="A Flair .pt classifier, 'demo' or 'none' (default: 'demo' with a Flair --model, 'none' with a logged one).",
)
@click.option("--conll", type=click.Path(exists=True, dir_okay=False), help="Sentences from a CoNLL file.")
@click.option(
    "--sentences",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Sentences to compare (of --conll, else the shipped check set); the parity gate of an export made here runs "
    "on as many, at most 128.",
)
@click.option("--documents", type=int, default=40, show_default=True, help="Documents of five sentences each.")
@click.option("--long-words", type=int, default=5000, show_default=True, help="One text of that many words (0: none).")
@click.option(
    "--flert/--no-flert",
    default=None,
    help="Also a FLERT tagger built from the --model .pt (the tagger's head; default: on with a Flair --model, off "
    "with a logged one, which has no .pt to build it from).",
)
@click.option("--tracking-uri", default=None, help="For models:/ and runs:/ URIs; defaults to MLFLOW_TRACKING_URI.")
@_REPORT_OUTPUT
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of the Markdown table.")
def lean_check(
    env_dir, model, classifier, conll, sentences, documents, long_words, flert, tracking_uri, output, as_json
):
    """Serve models lean from an environment made only from their requirements (ENV_DIR, made or reused) and
    compare their answers with this environment's lean and Flair paths.

    Prints the Markdown table (--json: its rows); --output also writes it into a file. Exits with 1 where an answer
    differed or the model's environment imported torch, flair or transformers. Nothing is logged to MLflow: the
    models exported here are saved in a temporary folder."""
    logged = _logged_reference(model)
    if logged and flert:
        raise click.UsageError(
            "--flert builds a FLERT tagger from a Flair .pt; a logged --model has none: leave --flert out."
        )
    if classifier is None:
        classifier = "none" if logged else "demo"
    flert = not logged if flert is None else flert
    located = fetch_model(model, tracking_uri=tracking_uri) if logged else None  # verified (and cached) first
    config = LeanCheckConfig(
        env_dir=Path(env_dir),
        tagger_path=None if logged else resolve_model_path(model),
        tagger_name="demo tagger" if model == DEMO else None,
        logged=((redact(model) if is_model_uri(model) else Path(model).name, located),) if located else (),
        classifier_path=None if classifier == "none" else _classifier_path(classifier),
        conll=Path(conll) if conll else None,
        sentences=sentences,
        documents=documents,
        long_words=long_words,
        flert=flert,
        command="flair-mlflow " + " ".join(sys.argv[1:]),
    )
    rows = run_lean_check(config, Path(output) if output else None, _progress("mlflow_flavor.tools.lean_check"))
    click.echo(json.dumps(rows, indent=2) if as_json else lean_check_report(config, rows))
    if any(r["identical_to_flair_path"] < r["count"] or r["imported_in_model_env"] for r in rows):
        raise SystemExit(1)


def _logged_reference(model: str) -> bool:
    """Whether ``--model`` names a logged model (a URI, or a directory: an MLflow model, or a bundle that
    fetch_model refuses saying how to log it) rather than a Flair .pt or 'demo'."""
    if model in (DEMO, DEMO_CLASSIFIER):
        return False
    path = Path(model).expanduser()
    return path.is_dir() or (is_model_uri(model) and not path.exists())


def _classifier_path(value: str) -> Path:
    return demo_classifier_path() if value == "demo" else Path(value)


@main.command("mlserver-config")
@click.argument("model_uri")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="flair", show_default=True, help="The model's name in /v2/models/<name>/infer.")
@click.option(
    "--parallel-workers", type=click.IntRange(0), default=0, show_default=True, help="0: in the server's process."
)
@click.option(
    "--max-batch-size", type=click.IntRange(0), default=0, show_default=True, help="MLServer's batching (0: off)."
)
@click.option("--max-batch-time", type=click.FloatRange(0), default=0.0, show_default=True, help="Seconds.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8081, show_default=True)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=8082, show_default=True)
def mlserver_config(model_uri, directory, **options):
    """Write DIRECTORY/settings.json and DIRECTORY/NAME/model-settings.json to serve MODEL_URI with `mlserver start
    DIRECTORY` (V2 inference protocol, as KServe and Seldon Core run it; needs the mlserver extra: pip install -e
    ".[mlserver]" in a checkout). Run it again with another --name to serve several models."""
    local = Path(model_uri)
    if not urlparse(model_uri).scheme and not local.exists():
        raise click.BadParameter(
            f"{model_uri}: no such directory, and not a URI (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/, "
            "s3://...). Give an MLflow model directory or a model URI.",
            param_hint="MODEL_URI",
        )
    if local.exists():
        try:
            verify_model_dir(local)
        except BundleError as e:
            message = f"{model_uri} is not a flair-mlflow MLflow model: {e}"
            raise click.BadParameter(message, param_hint="MODEL_URI") from None
        model_uri = str(local.resolve())
    try:
        config = MLServerConfig(model_uri=model_uri, **options)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint=f"--{(e.option or 'name').replace('_', '-')}") from None
    for path in write_mlserver_config(config, directory):
        click.echo(str(path))


@main.command()
@click.argument("model_uri")
@click.option("--tracking-uri", default=None, help="Defaults to MLFLOW_TRACKING_URI.")
@click.option("--no-cache", is_flag=True, help="Download again even when a verified copy is cached.")
def fetch(model_uri, tracking_uri, no_cache):
    """Download MODEL_URI once into the cache, verify every checksum, print the local path."""
    click.echo(str(fetch_model(model_uri, tracking_uri=tracking_uri or None, use_cache=not no_cache)))


class _OptionalFloat(click.ParamType):
    """A number, or an empty string for none (MLflow project parameters default to "")."""

    name = "number"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        if str(value).strip() == "":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)


@main.command()
@click.argument("model")
@click.option(
    "--conll",
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Labeled set: two-column CoNLL for taggers, '__label__x text' lines for classifiers.",
)
@click.option("--champion", default=None, help="Another model to evaluate on the same data in the same run.")
@click.option("--limit", type=int, default=None, help="Only the first N sentences or texts.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="The pyfunc's mini_batch_size.")
@click.option("--experiment-name", default=None, help="Experiment of the evaluation run (default: the current one).")
@click.option("--tracking-uri", default=None, help="Defaults to MLFLOW_TRACKING_URI.")
def evaluate(model, data, champion, limit, batch_size, experiment_name, tracking_uri):
    """Evaluate MODEL (models:/ URI, MLflow model or bundle directory) on labeled data with mlflow.evaluate.

    Prints the metrics (f1_micro, f1_macro, ... and the run id) as one JSON object.
    """
    import mlflow

    _flair_logs_to_stderr()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    config = EvaluationConfig(data=data, limit=limit, mini_batch_size=batch_size, experiment_name=experiment_name)
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links; stdout stays one JSON document
        report = evaluate_model(model, config, champion=champion or None)
    click.echo(json.dumps(report.summary(), indent=2))


class _OptionalInt(_OptionalFloat):
    """A whole number, or an empty string for none (MLflow project parameters default to "")."""

    name = "integer"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number is None:
            return None
        if number != int(number) or number < 1:
            self.fail(f"{value!r} is not a positive whole number", param, ctx)
        return int(number)


@main.command()
@click.option("--name", required=True, help="Registered model name in the source registry.")
@click.option("--version", required=True, help="Version number, or @alias.")
@click.option("--to-alias", default=None, help="Alias to point at the promoted version.")
@click.option("--to-stage", default=None, help="Stage to move the promoted version to (Staging, Production, ...).")
@click.option("--tracking-uri", default=None, help="Source tracking server; defaults to MLFLOW_TRACKING_URI.")
@click.option("--target-tracking-uri", default=None, help="Another tracking server to promote into.")
@click.option("--target-name", default=None, help="Registered model name in the target (default: --name).")
@click.option(
    "--target-artifact-location", default=None, help="Where the copy's files go, e.g. s3://prod-bucket/models."
)
@click.option("--target-experiment", default="flair-mlflow-promotions", show_default=True)
@click.option(
    "--archive-existing/--keep-existing", default=True, show_default=True, help="Archive versions in --to-stage."
)
@_pair_options
@click.option(
    "--allow-untagged",
    type=click.BOOL,
    is_flag=False,
    flag_value=True,
    default=False,
    help="Promote a version registered without flair-mlflow's digests (alone, or with true/false).",
)
@click.option(
    "--eval-conll",
    "--eval-data",
    "eval_conll",
    default=None,
    help="Labeled set to evaluate the version and the champion on before anything moves (CoNLL; classifiers: "
    "'__label__x text' lines).",
)
@click.option(
    "--limit",
    "eval_limit",
    type=_OptionalInt(),
    default=None,
    help="Only the first N sentences or texts of --eval-conll (as evaluate's --limit).",
)
@click.option("--min-f1", type=_OptionalFloat(), default=None, help="Least F1 (micro) the version must reach.")
@click.option("--max-f1-drop", type=_OptionalFloat(), default=None, help="Most its F1 may fall below the champion's.")
def promote(name, version, to_alias, to_stage, tracking_uri, target_tracking_uri, target_name, **options):
    """Verify a model version and move a stage / alias to it, in this registry or another one.

    Empty values count as not given (for MLflow project parameters).
    """
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    config = PromotionConfig(
        name=name,
        version=version,
        to_alias=to_alias or None,
        to_stage=to_stage or None,
        tracking_uri=tracking_uri or None,
        target_tracking_uri=target_tracking_uri or None,
        target_name=target_name or None,
        target_artifact_location=options["target_artifact_location"] or None,
        target_experiment=options["target_experiment"] or "flair-mlflow-promotions",
        archive_existing=options["archive_existing"],
        pair=options["pair"] and not options["no_pair"],
        allow_untagged=options["allow_untagged"],
        eval_conll=options["eval_conll"] or None,
        eval_limit=options["eval_limit"],
        min_f1=options["min_f1"],
        max_f1_drop=options["max_f1_drop"],
    )
    if config.eval_conll:
        _flair_logs_to_stderr()
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links; stdout stays one JSON document
        result = run_promotion(config, progress=_progress("mlflow_flavor.registry.promote"))
    click.echo(json.dumps({**result.__dict__, "model_uri": result.model_uri}, indent=2))


if __name__ == "__main__":
    main()
