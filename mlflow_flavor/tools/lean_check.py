"""Lean serving checked end to end (issue 25): real models logged with the ONNX backend, served from a virtual
environment made only from their ``requirements.txt`` (no Flair, torch or transformers in it), against the same
models in this full environment, served lean and served by Flair's code.

Models: the demo tagger (MiniLM, reprojection, CRF), a FLERT tagger (the demo tagger's head over MiniLM with 64 words
of context on each side and the ``[FLERT]`` separator) and the demo classifier, each exported here with the ONNX
backend (its parity gate on at most ``sentences`` texts); or models already logged (MLflow model directories: a
``models:/`` or ``runs:/`` URI fetched and verified), checked as they were logged, without exporting. Texts:
``sentences`` sentences of a CoNLL file (WikiANN by default where present, else the shipped check set), ``documents``
documents of five of them (split into sentences, each with its neighbours as context), and one text of
``long_words`` words (windows).
Reported per model and text set: answers identical (labels, offsets, tokens) to the Flair path, the largest score
difference, answers exactly equal (scores too) to the lean path in this environment, and what the model's
environment imported.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import SEQUENCE_TAGGING, TEXT_CLASSIFICATION, ParityConfig, check_integer
from exporter.errors import ConfigError
from exporter.format.manifest import read_manifest
from exporter.format.modelfile import load_flair_model
from exporter.quality.corpus import check_sentences, read_conll
from exporter.tools.demo import minilm_path
from exporter.tools.report import write_report
from mlflow_flavor.flavor import save_model
from mlflow_flavor.mlmodel import BUNDLE_SUBPATH, FLAVOR_NAME
from mlflow_flavor.tools.model_env import model_environment, predict_in_environment, site_packages_mb

__all__ = ["LeanCheckConfig", "compare_answers", "lean_check_report", "run_lean_check"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeanCheckConfig:
    """What to check (see the module docstring).

    Attributes:
        tagger_path / classifier_path: Flair ``.pt`` files, exported here with the ONNX backend (None: none).
        flert: also a FLERT tagger built from ``tagger_path``.
        logged: models already logged, checked as they are: ``(name, MLflow model directory)`` (verified copies).
        tagger_name: the tagger's name in the report (default: its file's name).
    """

    env_dir: Path
    tagger_path: Path | None = None
    classifier_path: Path | None = None
    conll: Path | None = None
    sentences: int = 200
    documents: int = 40
    long_words: int = 5000
    flert: bool = True
    command: str = ""
    logged: tuple[tuple[str, Path], ...] = ()
    tagger_name: str | None = None

    def __post_init__(self) -> None:
        check_integer("sentences", self.sentences, 1)
        check_integer("documents", self.documents, 0)
        check_integer("long_words", self.long_words, 0, note="0: off")
        if self.flert and self.tagger_path is None:
            raise ConfigError("The FLERT tagger is built from a Flair tagger's .pt: give tagger_path or flert=False.")
        if self.tagger_path is None and self.classifier_path is None and not self.logged:
            raise ConfigError("Nothing to check: give a tagger, a classifier or a logged model.")

    @property
    def parity(self) -> ParityConfig:
        """The parity gate of the exports made here: on at most ``sentences`` texts of the shipped check set."""
        return ParityConfig(num_sentences=min(self.sentences, ParityConfig().num_sentences or self.sentences))


def logged_model_is_tagger(model_dir: Path) -> bool:
    """Whether a logged model to check is a tagger (else a classifier); refuses one that does not serve lean.

    Raises:
        ConfigError: the model serves with Flair's code (its requirements hold Flair and torch), or is of a task
            that never serves lean.
    """
    from mlflow.models import Model

    flavor = Model.load(str(model_dir)).flavors[FLAVOR_NAME]
    manifest, _ = read_manifest(Path(model_dir) / flavor.get("bundle", BUNDLE_SUBPATH))
    served = flavor.get("serving_path") or manifest.get("serving_path", "flair")
    if served != "lean":
        why = manifest.get("serving_path_reason") or "its model_config or its export chose Flair's code"
        raise ConfigError(
            f"{model_dir} serves with Flair's code (serving_path: {served}; {why}), so its requirements hold Flair "
            "and torch: lean-check checks models that serve lean. Log it with --serving-path auto (ONNX backend)."
        )
    if manifest.get("task") not in (SEQUENCE_TAGGING, TEXT_CLASSIFICATION):
        raise ConfigError(f"{model_dir} is a {manifest.get('task')} model; lean-check checks taggers and classifiers.")
    return manifest["task"] == SEQUENCE_TAGGING


def _without_scores(answer: Any, scores: list[float]) -> Any:
    if isinstance(answer, dict):
        if "score" in answer:
            scores.append(float(answer["score"]))
        return {k: _without_scores(v, scores) for k, v in answer.items() if k != "score"}
    if isinstance(answer, list):
        return [_without_scores(v, scores) for v in answer]
    return answer


def compare_answers(a: Sequence[Any], b: Sequence[Any]) -> dict[str, Any]:
    """How many answers agree in everything but their scores, and the largest score difference among those."""
    identical, largest = 0, 0.0
    for x, y in zip(a, b, strict=True):
        xs: list[float] = []
        ys: list[float] = []
        if _without_scores(x, xs) == _without_scores(y, ys):
            identical += 1
            largest = max([largest, *(abs(p - q) for p, q in zip(xs, ys))])
    return {"texts": len(a), "identical": identical, "max_score_diff": largest}


def _texts(config: LeanCheckConfig) -> tuple[list[str], str]:
    if config.conll:
        sentences = [" ".join(w for w, _ in s) for s in read_conll(config.conll)]
        return [s for s in sentences if s.strip()][: config.sentences], str(config.conll)
    return check_sentences(config.sentences, long_every=0), "the shipped check set"


def _flert_tagger(tagger_path: Path) -> Any:
    """The demo tagger's head over MiniLM with FLERT context (64 words each side, the [FLERT] separator)."""
    from flair.embeddings import TransformerWordEmbeddings

    tagger = load_flair_model(tagger_path)
    tagger.embeddings = TransformerWordEmbeddings(
        str(minilm_path()),
        name="all-MiniLM-L6-v2",
        layers="-1",
        subtoken_pooling="first",
        use_context=True,
        fine_tune=False,
    )
    return tagger.eval()


def run_lean_check(
    config: LeanCheckConfig, output: Path | None = None, progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Run the check; write its table (:func:`lean_check_report`) into ``output`` (section ``lean``) when given;
    return its rows."""
    import mlflow.pyfunc

    say = progress or log.info
    logged = [(name, path, logged_model_is_tagger(path)) for name, path in config.logged]  # refused before any work
    sentences, source = _texts(config)
    words = " ".join(sentences).split()
    long_text = " ".join((words * (config.long_words // max(len(words), 1) + 1))[: config.long_words])
    documents = [" ".join(sentences[i : i + 5]) for i in range(0, 5 * config.documents, 5)][: config.documents]
    sets = [("sentences", sentences, {}), ("documents (split, context)", documents, {"split_sentences": True})]
    if config.long_words:
        sets.append((f"one text of {config.long_words:,} words", [long_text], {}))
    # each model: its name, what builds its Flair model to export (None: logged, checked as it is), a tagger or not
    models: list[tuple[str, Callable[[], Any] | Path, bool]] = []
    if config.tagger_path is not None:
        tagger_name = config.tagger_name or config.tagger_path.name
        models.append((tagger_name, lambda: load_flair_model(config.tagger_path), True))
    if config.flert:
        models.append(("FLERT tagger", lambda: _flert_tagger(config.tagger_path), True))
    models += [(name, path, tagger) for name, path, tagger in logged]
    if config.classifier_path:
        models.append(("demo classifier", lambda: load_flair_model(config.classifier_path), False))
    rows = []
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-lean-check-") as work:
        for name, build, tagger in models:
            if isinstance(build, Path):
                model_dir = build
                say(f"[{name}] the model as logged, at {model_dir}")
            else:
                model_dir = Path(work) / name.replace(" ", "-").replace("/", "-")
                texts = config.parity.num_sentences
                say(f"[{name}] exporting to ONNX and saving the MLflow model (parity gate on {texts} texts)")
                save_model(build(), model_dir, parity=config.parity)
            say(f"[{name}] the model's own environment at {config.env_dir}")
            python = model_environment(model_dir, config.env_dir)
            size = site_packages_mb(python)
            here_lean = mlflow.pyfunc.load_model(str(model_dir))
            here_flair = mlflow.pyfunc.load_model(str(model_dir), model_config={"serving_path": "flair"})
            for what, texts, params in sets if tagger else sets[:1] + sets[2:]:
                params = {**params, "return_tokens": True} if tagger else {"top_k": 4}
                say(f"[{name}] {what}: in the model's environment, lean here, Flair's path here")
                there = predict_in_environment(python, model_dir, texts, params)
                lean = here_lean.predict(texts, params=params)
                flair = here_flair.predict(texts, params=params)
                versus_flair = compare_answers(there["answers"], flair)
                rows.append(
                    {
                        "model": name,
                        "texts": what,
                        "count": len(texts),
                        "identical_to_flair_path": versus_flair["identical"],
                        "max_score_diff": versus_flair["max_score_diff"],
                        "exactly_equal_to_full_environment": sum(a == b for a, b in zip(there["answers"], lean)),
                        "imported_in_model_env": there["imported"],
                        "site_packages_mb": size,
                    }
                )
    if output:
        write_report(output, lean_check_report(config, rows, source), section="lean")
    return rows


def lean_check_report(config: LeanCheckConfig, rows: Sequence[dict[str, Any]], source: str | None = None) -> str:
    """The Markdown table of :func:`run_lean_check`'s rows (``source``: where the texts came from; default: said from
    ``config``)."""
    source = source if source is not None else _texts(config)[1]
    size = rows[0]["site_packages_mb"] if rows else 0.0
    exported = "exported and saved here with the ONNX backend"
    as_logged = ", ".join(f"`{name}`" for name, _ in config.logged)
    if not config.logged:
        how = f"each model {exported}"
    elif config.tagger_path is None and config.classifier_path is None:
        how = f"{as_logged} as logged"
    else:
        how = f"{as_logged} as logged, the others {exported}"
    lines = [
        "",
        f"Lean serving checked end to end (`{config.command or 'flair-mlflow lean-check'}`): {how}, "
        f"answered by `mlflow.pyfunc.load_model(...).predict` in a virtual environment made only "
        f"from its requirements.txt ({size:,.0f} MB of site-packages; torch, flair and transformers not installed), "
        f"compared with the same model in the full environment, served lean and by Flair's code (`serving_path: "
        f"flair`). Texts from {source}.",
        "",
        "| model | texts | count | same answers as the Flair path | largest score difference | "
        "exactly equal to the full environment | imported there |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['texts']} | {r['count']} | {r['identical_to_flair_path']} | "
            f"{r['max_score_diff']:.1e} | {r['exactly_equal_to_full_environment']} | "
            f"{', '.join(r['imported_in_model_env']) or 'none of torch, flair, transformers'} |"
        )
    return "\n".join(lines) + "\n"
