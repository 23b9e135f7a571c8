"""Lean serving checked end to end (issue 25): real models logged with the ONNX backend, served from a virtual
environment made only from their ``requirements.txt`` (no Flair, torch or transformers in it), against the same
models in this full environment, served lean and served by Flair's code.

Models: the demo tagger (MiniLM, reprojection, CRF), a FLERT tagger (the demo tagger's head over MiniLM with 64 words
of context on each side and the ``[FLERT]`` separator) and the demo classifier. Texts: ``sentences`` sentences of a
CoNLL file (WikiANN by default where present, else the shipped check set), ``documents`` documents of five of them
(split into sentences, each with its neighbours as context), and one text of ``long_words`` words (windows).
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

from exporter.config import check_integer
from exporter.format.modelfile import load_flair_model
from exporter.quality.corpus import check_sentences, read_conll
from exporter.tools.demo import demo_model_path, minilm_path
from exporter.tools.report import write_report
from mlflow_flavor.flavor import save_model
from mlflow_flavor.tools.model_env import model_environment, predict_in_environment, site_packages_mb

__all__ = ["LeanCheckConfig", "compare_answers", "run_lean_check"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeanCheckConfig:
    """What to check (see the module docstring)."""

    env_dir: Path
    tagger_path: Path
    classifier_path: Path | None = None
    conll: Path | None = None
    sentences: int = 200
    documents: int = 40
    long_words: int = 5000
    flert: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        check_integer("sentences", self.sentences, 1)
        check_integer("documents", self.documents, 0)
        check_integer("long_words", self.long_words, 0, note="0: off")


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
    """Run the check; write its table into ``output`` (section ``lean``) when given; return its rows."""
    import mlflow.pyfunc

    say = progress or log.info
    sentences, source = _texts(config)
    words = " ".join(sentences).split()
    long_text = " ".join((words * (config.long_words // max(len(words), 1) + 1))[: config.long_words])
    documents = [" ".join(sentences[i : i + 5]) for i in range(0, 5 * config.documents, 5)][: config.documents]
    sets = [("sentences", sentences, {}), ("documents (split, context)", documents, {"split_sentences": True})]
    if config.long_words:
        sets.append((f"one text of {config.long_words:,} words", [long_text], {}))
    tagger_name = "demo tagger" if config.tagger_path == demo_model_path() else config.tagger_path.name
    models: list[tuple[str, Callable[[], Any], bool]] = [
        (tagger_name, lambda: load_flair_model(config.tagger_path), True)
    ]
    if config.flert:
        models.append(("FLERT tagger", lambda: _flert_tagger(config.tagger_path), True))
    if config.classifier_path:
        models.append(("demo classifier", lambda: load_flair_model(config.classifier_path), False))
    rows = []
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-lean-check-") as work:
        for name, build, tagger in models:
            model_dir = Path(work) / name.replace(" ", "-")
            say(f"[{name}] exporting to ONNX and saving the MLflow model")
            save_model(build(), model_dir)
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
        write_report(output, _markdown(config, rows, source), section="lean")
    return rows


def _markdown(config: LeanCheckConfig, rows: Sequence[dict[str, Any]], source: str) -> str:
    size = rows[0]["site_packages_mb"] if rows else 0.0
    lines = [
        "",
        f"Lean serving checked end to end (`{config.command or 'flair-mlflow lean-check'}`): each model logged with "
        f"the ONNX backend, answered by `mlflow.pyfunc.load_model(...).predict` in a virtual environment made only "
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
