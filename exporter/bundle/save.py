"""Write bundles: one directory holding a Flair model and its accelerated encoder.

Layout::

    bundle.json        manifest: schema, backend, files with size and sha256, versions, settings, parity
    model.pt           the Flair model (for ONNX without the transformer weights, which the graph holds)
    encoder.onnx       the encoder graph (ONNX backend), plus any external-data files
    tokenizer/         the transformer tokenizer, as saved by ``save_pretrained`` (encoder backends)

What each backend writes and how it loads is its module's business (``exporter.backends``): this module
dispatches through the backend table and holds no per-backend branches.

A bundle is written into a temporary sibling directory and renamed into place only when it is complete
and has passed the parity gate (which loads it with ``exporter.bundle.load``): a failed export leaves nothing
behind. The directory is created with ``os.mkdir``, so it gets the permissions the user's umask gives any new
folder, without reading or changing the process's umask.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exporter.backends import backend_module, choose_backend, flair_code_reason, flavor_metadata
from exporter.backends.kinds import CHAR_LMS, flair_path_reason
from exporter.bundle.load import load_bundle
from exporter.config import FLAIR, LEAN, ExportConfig, RuntimeOptions
from exporter.errors import BundleError, ConfigError, UnsupportedModelError
from exporter.format.manifest import (
    file_entries,
    library_versions,
    list_files,
    read_manifest,
    verify_bundle,
    write_manifest,
)
from exporter.format.modelfile import PICKLE_NEEDS_OPT_IN, SUPPORTED_MODELS
from exporter.format.tasks import describe_tasks, is_multitask
from exporter.quality.corpus import check_sentences, read_conll
from exporter.quality.lean_parity import lean_parity
from exporter.quality.metrics import gold_spans
from exporter.quality.parity import check_parity, is_pair_model
from exporter.runtime.lean.model import LEAN_SECTION, load_lean

__all__ = ["BundleInfo", "refuse_existing_output", "save_bundle"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`save_bundle` wrote."""

    path: Path
    manifest_sha256: str
    manifest: dict[str, Any]


def _model_class(model: Any) -> str:
    """The model's class name when flair-mlflow supports it exactly (subclasses change predict, so no)."""
    name = type(model).__name__
    if name in ("RelationExtractor", "RelationClassifier") and type(model).__module__.split(".")[0] == "flair":
        raise UnsupportedModelError(
            f"A {name} classifies pairs of the entities a tagger found, so it is bundled with that tagger: "
            "mlflow_flavor.save_model(relation_model, path, tagger=ner_model), on the command line --tagger NER.pt "
            "(or exporter.format.tasks.with_tagger(relation_model, ner_model) for save_bundle)."
        )
    if name not in SUPPORTED_MODELS or type(model).__module__.split(".")[0] != "flair":
        embeddings = getattr(model, "embeddings", None) or getattr(model, "document_embeddings", None)
        what = type(embeddings).__name__ if embeddings is not None else "no embeddings"
        raise UnsupportedModelError(
            f"Cannot export a {type(model).__module__}.{name} (embeddings: {what}): flair-mlflow supports "
            f"{', '.join(SUPPORTED_MODELS)} from Flair itself, whose predict it reproduces. Other models "
            "(and subclasses, which may predict differently) are refused rather than exported into something "
            "that could tag or classify wrongly."
        )
    describe_tasks(model)  # a multitask model's tasks, checked before anything is written
    return name


def _labels(model: Any) -> list[str]:
    dictionary = getattr(model, "label_dictionary", None)
    return list(dictionary.get_items()) if dictionary is not None else []


def _parity_sentences(model: Any, config: ExportConfig) -> tuple[list, list | None]:
    """Check sentences: the labeled set, the user's sentences, or ``num_sentences`` texts of the shipped check
    set (``exporter.quality.corpus.check_sentences``: natural text, every 16th a paragraph beyond 512 subtokens);
    for a model of text pairs, pairs: the user's, or consecutive texts of the check set."""
    if is_pair_model(model):
        if config.parity.gold_conll:
            raise ConfigError(
                "gold_conll labels entities of single texts; a model of text pairs is checked against its "
                "original on pairs: leave gold_conll out, or give parity_sentences as 'text<TAB>text_pair' strings."
            )
        if config.parity_sentences:
            return [_checked_pair(i, pair) for i, pair in enumerate(config.parity_sentences)], None
        texts = check_sentences(2 * config.parity.num_sentences)
        return list(zip(texts[0::2], texts[1::2])), None
    if config.parity.gold_conll and is_multitask(model):
        raise ConfigError(
            "gold_conll scores one tagger; a multitask model is checked against its original on every task's "
            "answers: leave gold_conll out."
        )
    if config.parity.gold_conll:
        labeled = list(read_conll(config.parity.gold_conll, limit=config.parity.gold_limit))
        return [[w for w, _ in s] for s in labeled], [gold_spans([t for _, t in s]) for s in labeled]
    if config.parity_sentences:
        return list(config.parity_sentences), None
    return check_sentences(config.parity.num_sentences), None


def _checked_pair(index: int, text: str) -> tuple[str, str]:
    """A check pair, given as ``text<TAB>text_pair`` (a line of a ``--parity-sentences`` file)."""
    first, tab, second = text.partition("\t")
    if tab and first.strip() and second.strip():
        return first, second
    raise ConfigError(
        f"parity_sentences[{index}] is {text!r:.80}; a model of text pairs is checked on pairs, each given as "
        "'text<TAB>text_pair' (one per line in a --parity-sentences file)."
    )


def _checked_config(model: Any, config: ExportConfig | None) -> ExportConfig:
    """The export settings, with the backend the model needs (see ``exporter.backends.choose_backend``)."""
    config = config or ExportConfig()
    if not isinstance(config, ExportConfig):
        raise ConfigError(f"config must be an ExportConfig, got {type(config).__name__}.")
    return replace(config, backend=choose_backend(model, config.backend))


def refuse_existing_output(path: Path) -> None:
    """Refuse an output path that holds something: a bundle is written only into a new or empty folder."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BundleError(f"{path} already exists and is not an empty directory; choose a new path.")


def _work_dir(path: Path) -> Path:
    """A new, empty sibling of ``path`` to write the bundle into before it is renamed into place.

    ``os.mkdir`` applies the process's umask as any new folder gets it (``tempfile.mkdtemp`` would make it
    private, and reading the umask means setting it, which races with every other thread creating files)."""
    refuse_existing_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        work = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:12]}"
        try:
            work.mkdir()
            return work
        except FileExistsError:  # pragma: no cover - a 48-bit name collision
            continue


def _write_contents(model: Any, model_class: str, work: Path, config: ExportConfig) -> dict[str, Any]:
    """The backend's files and manifest additions, and what every manifest records."""
    content = backend_module(config.backend).export(model, work, config)
    content.setdefault("runtime", config.runtime.to_dict())
    content.update(
        {
            "backend": config.backend.value,
            "model_class": model_class,
            "task": SUPPORTED_MODELS[model_class],
            "tag_type": None if is_multitask(model) else getattr(model, "label_type", None),
            "labels": _labels(model),
            "tasks": describe_tasks(model),
            "export_config": config.to_dict(),
            "versions": library_versions(),
            "parity": None,
        }
    )
    if content.setdefault("serving_path", FLAIR) == FLAIR:  # every manifest says why it serves with Flair's code
        content["serving_path_reason"] = flair_path_reason(content, flair_code_reason(model))
    return content


def _gate(
    model: Any,
    work: Path,
    content: dict[str, Any],
    digest: str,
    config: ExportConfig,
    checks: tuple[list, list | None],
    exported: Any = None,
) -> dict[str, Any]:
    """Compare the bundle just written (``exported``: its Flair model, loaded here unless the lean check already
    did) with ``model`` on ``checks`` (:func:`_parity_sentences`; raises ParityError when it fails)."""
    if exported is None:
        # Flair's own ONNX / JIT models need their pickle (see exporter.format.modelfile): this process wrote it
        trusted = content.get("model_pickle") == PICKLE_NEEDS_OPT_IN
        exported = load_bundle(work, expected_manifest_sha256=digest, allow_pickle=trusted)
    texts, gold = checks
    recipe = (flavor_metadata(content)["quantization"] or {}).get("recipe")  # int8 exports only
    char_lms = any(isinstance(value, dict) and CHAR_LMS in value for value in content.values())
    return check_parity(
        model, exported, texts, config.parity, lossy=config.lossy, gold=gold, recipe=recipe, char_lms=char_lms
    )


def _refuse_lean_where_impossible(content: dict[str, Any], config: ExportConfig) -> None:
    """``serving_path='lean'`` for a bundle that has no lean path (another backend, a model lean serving does not
    cover): refused before anything is recorded."""
    if config.runtime.serving_path == LEAN and LEAN_SECTION not in content:
        raise ConfigError(f"serving_path='lean' cannot serve this model: {flair_path_reason(content)}.", "serving_path")


def _gate_lean(work: Path, content: dict[str, Any], digest: str, config: ExportConfig, texts: list) -> Any:
    """Keep the bundle lean only where its lean path answered every check text as its Flair path did (run whether or
    not the parity gate is on), and return the bundle's Flair model it loaded for that (the parity gate's, the bundle
    unchanged); else record why, remove the lean files and return None (the caller rewrites the manifest, and the
    Flair model changes with it), or, where ``serving_path='lean'`` was asked for, fail."""
    texts = [t if isinstance(t, str) else " ".join(t) for t in texts]  # labeled sentences: their words as text
    try:
        exported = load_bundle(work, expected_manifest_sha256=digest)
        manifest, _ = read_manifest(work)  # as written: with its files (load_bundle verified them)
        lean = load_lean(work, manifest, RuntimeOptions.for_loading(content["runtime"], None))
        report = lean_parity(exported, lean, texts)
    except Exception as e:  # any failure of the lean path (ours, the tokenizer's, ONNX Runtime's): serve with Flair
        report, why = None, f"the lean path failed on this bundle ({type(e).__name__}: {e})"
    else:
        content["lean_parity"] = report
        log.info(
            "Lean path: %d of %d check texts (%d documents) identical to the Flair path (largest score difference "
            "%.2g)",
            report["identical"],
            report["texts"],
            report["documents"],
            report["max_score_diff"],
        )
        if report["passed"]:
            return exported
        why = (
            f"the lean path answered {report['texts'] - report['identical']} of {report['texts']} check texts "
            f"otherwise than the Flair path (check texts {', '.join(report['differing'])})"
        )
    if config.runtime.serving_path == LEAN:
        raise ConfigError(f"serving_path='lean' cannot serve this model exactly: {why}.", "serving_path")
    log.warning("The bundle serves with Flair's code: %s.", why)
    section = content.pop(LEAN_SECTION)
    (work / section["head_file"]).unlink(missing_ok=True)
    content["serving_path"], content["serving_path_reason"] = FLAIR, why
    return None


def save_bundle(model: Any, path: str | Path, config: ExportConfig | None = None) -> BundleInfo:
    """Export ``model`` into a new bundle directory at ``path``.

    Args:
        model: a Flair ``SequenceTagger`` or ``TextClassifier`` (on transformer embeddings for the encoder backends).
        path: the bundle directory; must not exist, or be empty.
        config: how to export; defaults to ONNX fp32 with the parity gate.

    Returns:
        The bundle's path, the manifest and its sha256.
    """
    config = _checked_config(model, config)
    path = Path(path).absolute()
    model_class = _model_class(model)
    model.eval()
    work = _work_dir(path)
    started = time.perf_counter()
    try:
        log.info("Exporting %s as a %s bundle to %s", model_class, config.backend.value, path)
        content = _write_contents(model, model_class, work, config)
        _refuse_lean_where_impossible(content, config)
        entries = file_entries(work, list_files(work))
        digest = write_manifest(work, content, entries)
        checks = _parity_sentences(model, config) if config.parity.enabled or LEAN_SECTION in content else ([], None)
        exported = None
        if LEAN_SECTION in content:
            exported = _gate_lean(work, content, digest, config, checks[0])
            if exported is None:
                entries = file_entries(work, list_files(work))
                digest = write_manifest(work, content, entries)
        if config.parity.enabled:
            content["parity"] = _gate(model, work, content, digest, config, checks, exported)
        digest = write_manifest(work, content, entries)  # with what the gates recorded (lean_parity, parity)
        if path.exists():
            path.rmdir()
        os.replace(work, path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest = verify_bundle(path, digest)
    log.info(
        "Bundle written to %s in %.1f s (%d files, %.1f MB)",
        path,
        time.perf_counter() - started,
        len(entries),
        sum(e["size"] for e in entries.values()) / 1e6,
    )
    return BundleInfo(path=path, manifest_sha256=digest, manifest=manifest)
