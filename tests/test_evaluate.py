"""Evaluation with mlflow.models.evaluate, and promotions gated on it: equal to Flair's own evaluate, refusals
that leave alias and stage alone, acceptance of an equal model, in-process, through `mlflow run` and across
two tracking servers on S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from conftest import REPO, log_and_stage, write_conll
from mlflow.exceptions import MlflowException
from test_s3_promotion import s3, source_server, target_server  # noqa: F401  (its fixtures: S3 and two servers)

from exporter.errors import ConfigError
from mlflow_flavor.cli.commands import main
from mlflow_flavor.registry.errors import QualityGateError
from mlflow_flavor.registry.evaluate import (
    EVALUATION_RUN_TAG,
    PER_LABEL_PLOT,
    PER_LABEL_TABLE,
    EvaluationConfig,
    evaluate_model,
)
from mlflow_flavor.registry.promote import PromotionConfig, promote

# sentences whose tokens Flair's tokenizer would split differently: scored on the file's own tokens
RETOKENIZED = [
    [("Prices", "O"), ("rose", "O"), ("in", "O"), ("2008–09", "O"), ("in", "O"), ("Paris", "B-LOC"), (".", "O")],
    [("John", "B-PER"), ("Smith", "I-PER"), ("(", "O"), ("''27", "O"), ("July", "O"), (")", "O"), ("left", "O")],
]


def _bio(spans, length: int) -> list[str]:
    tags = ["O"] * length
    for span in spans:
        label = span.get_label("ner").value
        for n, token in enumerate(span.tokens):
            tags[token.idx - 1] = ("B-" if n == 0 else "I-") + label
    return tags


def _own_labels(tagger, count: int, seed: int) -> list[list[tuple[str, str]]]:
    """Generated sentences labeled with ``tagger``'s own predictions (it is right on them by construction)."""
    from flair.data import Sentence

    from exporter.quality.corpus import generate_tagged_sentences

    rows = []
    for tagged in generate_tagged_sentences(count, seed=seed):
        sentence = Sentence([w for w, _ in tagged])
        tagger.predict(sentence)
        rows.append(list(zip([w for w, _ in tagged], _bio(sentence.get_spans("ner"), len(sentence)))))
    return rows


@pytest.fixture(scope="module")
def mixed_conll(tiny_tagger, tmp_path_factory) -> Path:
    """Half template gold, half the tagger's own labels, plus sentences Flair's tokenizer splits otherwise."""
    from exporter.quality.corpus import generate_tagged_sentences

    rows = generate_tagged_sentences(30, seed=11) + _own_labels(tiny_tagger, 30, seed=12) + RETOKENIZED
    return write_conll(tmp_path_factory.mktemp("eval") / "mixed.conll", rows)


@pytest.fixture(scope="module")
def own_conll(tiny_tagger, tmp_path_factory) -> Path:
    return write_conll(tmp_path_factory.mktemp("eval") / "own.conll", _own_labels(tiny_tagger, 40, seed=13))


@pytest.fixture(scope="module")
def worse_tagger(tiny_bert):
    """The tiny tagger with noise on its head's weights: deliberately worse on the tagger's own labels."""
    import torch
    from tinymodels import build_tiny_tagger

    tagger = build_tiny_tagger(tiny_bert)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        weight = tagger.linear.weight
        weight.add_(torch.randn(weight.shape, generator=generator) * weight.std() * 2)
    return tagger


def _flair_scores(model, path: Path, label_type: str, classifier: bool = False) -> dict[str, float]:
    if classifier:
        from flair.datasets import ClassificationDataset

        data = ClassificationDataset(path, label_type=label_type)
    else:
        from flair.datasets import ColumnDataset

        data = ColumnDataset(path, {0: "text", 1: label_type})
    result = model.evaluate(data, gold_label_type=label_type, mini_batch_size=32)
    report = result.classification_report
    return {
        "f1_micro": report["micro avg"]["f1-score"],
        "precision_micro": report["micro avg"]["precision"],
        "recall_micro": report["micro avg"]["recall"],
        "f1_macro": report["macro avg"]["f1-score"],
    }


def _artifacts(run_id: str) -> set[str]:
    client = mlflow.MlflowClient()
    return {f.path for f in client.list_artifacts(run_id, "evaluation")}


@pytest.mark.slow
def test_cli_entity_f1_equals_flairs_own_evaluate(tiny_tagger, tiny_bundle, mixed_conll):
    from flair.data import Sentence

    from exporter import load_bundle

    result = CliRunner().invoke(main, ["evaluate", str(tiny_bundle), "--conll", str(mixed_conll)])
    assert result.exit_code == 0, result.output
    ours = json.loads(result.stdout)
    for model in (load_bundle(tiny_bundle), tiny_tagger):  # the bundle's model and the original
        flair = _flair_scores(model, mixed_conll, "ner")
        for key, value in flair.items():
            assert round(ours[key], 4) == round(value, 4), (key, ours[key], value)
    assert 0 < ours["f1_micro"] < 1  # neither trivially right nor wrong: the comparison means something
    retokenized = sum([t.text for t in Sentence(" ".join(w for w, _ in s))] != [w for w, _ in s] for s in RETOKENIZED)
    assert ours["retokenized_sentences"] == retokenized > 0
    assert ours["throughput_texts_per_s"] > 0 and set(ours["per_label_f1"]) <= {"PER", "LOC", "ORG", "MISC"}

    run = mlflow.get_run(ours["run_id"])
    assert run.data.metrics["f1_micro"] == pytest.approx(ours["f1_micro"])
    assert run.data.metrics["f1_macro"] == pytest.approx(ours["f1_macro"])
    for label, f1 in ours["per_label_f1"].items():
        assert run.data.metrics[f"f1_label_{label}"] == pytest.approx(f1)
    assert {PER_LABEL_TABLE, PER_LABEL_PLOT} <= _artifacts(ours["run_id"])
    table = mlflow.load_table(PER_LABEL_TABLE, run_ids=[ours["run_id"]])
    assert dict(zip(table["label"], table["f1"])) == pytest.approx(ours["per_label_f1"])


@pytest.mark.slow
def test_classifier_f1_equals_flairs_own_evaluate(tiny_bert, tiny_bundle, mixed_conll, tmp_path):
    from flair.data import Sentence
    from tinymodels import build_tiny_classifier

    import mlflow_flavor
    from exporter.quality.corpus import generate_topic_texts

    classifier = build_tiny_classifier(tiny_bert)
    known = list(classifier.label_dictionary.get_items())
    lines = []
    for n, (text, topic) in enumerate(generate_topic_texts(80, seed=21)):
        # only labels the model knows: Flair 0.15's evaluate misaligns a batch's predictions when a gold label is
        # outside the model's dictionary (it drops those rows from the scores, then zips them with all texts)
        topic = topic if topic in known else known[n % len(known)]
        if n % 2:  # half labeled with the classifier's own answer
            sentence = Sentence(text)
            classifier.predict(sentence)
            topic = sentence.get_labels("topic")[0].value
        lines.append(f"__label__{topic} {text}")
    data = tmp_path / "topics.txt"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mlflow_flavor.save_model(classifier, tmp_path / "model")  # an MLflow model directory

    report = evaluate_model(str(tmp_path / "model"), EvaluationConfig(data=str(data)))
    flair = _flair_scores(classifier, data, "topic", classifier=True)
    for key, value in flair.items():
        assert round(report.challenger.metrics[key], 4) == round(value, 4), key
    assert report.challenger.task == "text-classification"
    assert report.challenger.metrics["accuracy"] == pytest.approx(report.challenger.metrics["f1_micro"])
    assert 0 < report.challenger.f1 < 1

    with pytest.raises(ConfigError, match="looks like text classification data"):
        evaluate_model(str(tiny_bundle), EvaluationConfig(data=str(data)))  # a tagger on classification data
    with pytest.raises(ConfigError, match="holds no labeled texts"):
        evaluate_model(str(tmp_path / "model"), EvaluationConfig(data=str(mixed_conll)))  # and the other way


def test_config_and_reference_errors(tmp_path, mixed_conll):
    with pytest.raises(ConfigError, match="No labeled file"):
        EvaluationConfig(data=str(tmp_path / "missing.conll"))
    with pytest.raises(ConfigError, match="not a model reference"):
        evaluate_model(str(tmp_path / "nothing-here"), EvaluationConfig(data=str(mixed_conll)))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        PromotionConfig(name="ner", version="2", to_alias="production", eval_conll=str(mixed_conll), min_f1=1.5)
    with pytest.raises(ConfigError, match="is not a file"):
        PromotionConfig(name="ner", version="2", to_alias="production", eval_conll=str(tmp_path / "x"), min_f1=0.5)
    with pytest.raises(ConfigError, match="need a labeled set"):
        PromotionConfig(name="ner", version="2", to_alias="production", max_f1_drop=0.01)
    # the CLI refuses before anything is looked up: the registry here is empty
    out = CliRunner().invoke(
        main,
        ["promote", "--name", "ner", "--version", "2", "--to-alias", "production"]
        + ["--eval-conll", str(mixed_conll), "--max-f1-drop", "-0.1"],
    )
    assert out.exit_code == 2 and "max_f1_drop must be a number between 0 and 1" in out.output
    out = CliRunner().invoke(main, ["promote", "--name", "ner", "--version", "2", "--to-alias", "p", "--min-f1", "x"])
    assert out.exit_code == 2 and "'x' is not a number" in out.output


def _register(model, **kwargs) -> str:
    import mlflow_flavor

    with mlflow.start_run():
        info = mlflow_flavor.log_model(model, name="model", registered_model_name="ner", **kwargs)
    return str(info.registered_model_version)


def _where(client) -> tuple[str, dict[str, str]]:
    versions = client.search_model_versions("name='ner'")
    return str(client.get_model_version_by_alias("ner", "production").version), {
        str(v.version): v.current_stage for v in versions
    }


@pytest.mark.slow
def test_gate_refuses_a_worse_challenger_and_accepts_an_equal_one(tiny_tagger, worse_tagger, own_conll):
    client = mlflow.MlflowClient()
    champion = str(log_and_stage(tiny_tagger).registered_model_version)  # Production, @production
    worse = _register(worse_tagger)
    before = _where(client)
    gate = dict(to_alias="production", to_stage="Production", eval_conll=str(own_conll), max_f1_drop=0.01)
    with pytest.raises(QualityGateError) as refused:
        promote(PromotionConfig(name="ner", version=worse, **gate))
    assert _where(client) == before  # nothing moved
    run = mlflow.get_run(refused.value.run_id)
    ours, theirs = run.data.metrics["f1_micro"], run.data.metrics["champion_f1_micro"]
    assert ours < theirs - 0.01
    message = str(refused.value)
    assert "f1_micro" in message and f"{ours:.4f}" in message and f"{theirs:.4f}" in message
    assert "max_f1_drop 0.01" in message and "were not changed" in message
    assert f"champion ner v{champion}" in message and f"ner v{worse}" in message
    assert run.data.metrics["f1_micro_drop_vs_champion"] == pytest.approx(theirs - ours)
    assert {PER_LABEL_TABLE, PER_LABEL_PLOT} <= _artifacts(run.info.run_id)
    assert EVALUATION_RUN_TAG not in client.get_model_version("ner", worse).tags

    # the same through the CLI: exit code 2, the reason on stderr, still nothing moved
    args = ["promote", "--name", "ner", "--version", worse, "--to-alias", "production", "--to-stage", "Production"]
    out = CliRunner().invoke(main, [*args, "--eval-conll", str(own_conll), "--max-f1-drop", "0.01"])
    assert out.exit_code == 2 and "fails the quality gate" in out.stderr and "Traceback" not in out.output
    assert _where(client) == before

    # an equal model (the same tagger, another backend) passes a gate that allows no drop at all
    equal = _register(tiny_tagger, backend="torch")
    # on the first 12 sentences of the labeled set only (--limit, as evaluate's; issue 23 item 11)
    out = CliRunner().invoke(main, [*args[:4], equal, *args[5:], "--eval-conll", str(own_conll), "--limit", "2.5"])
    assert out.exit_code == 2 and "'--limit'" in out.output and "not a positive whole number" in out.output
    limited = {**gate, "max_f1_drop": 0.0, "min_f1": 0.5, "eval_limit": 12}
    result = promote(PromotionConfig(name="ner", version=equal, **limited))
    assert _where(client) == (equal, {champion: "Archived", worse: "None", equal: "Production"})
    assert client.get_model_version("ner", equal).tags[EVALUATION_RUN_TAG] == result.evaluation_run_id
    metrics = mlflow.get_run(result.evaluation_run_id).data.metrics
    assert metrics["f1_micro"] == metrics["champion_f1_micro"] >= 0.5
    assert metrics["sentences"] == metrics["champion_sentences"] == 12


@pytest.mark.slow
def test_without_a_champion_only_the_absolute_threshold_applies(worse_tagger, own_conll):
    client = mlflow.MlflowClient()
    version = _register(worse_tagger)
    report = evaluate_model(f"models:/ner/{version}", EvaluationConfig(data=str(own_conll)))
    f1 = report.challenger.f1
    assert report.champion is None and 0 <= f1 < 1
    gate = dict(name="ner", version=version, to_alias="candidate", eval_conll=str(own_conll), max_f1_drop=0.0)
    with pytest.raises(QualityGateError, match=f"f1_micro {f1:.4f} of ner v{version} is below min_f1") as refused:
        promote(PromotionConfig(**gate, min_f1=min(1.0, f1 + 0.05)))
    assert "max_f1_drop" not in str(refused.value)  # no champion holds @candidate: no drop to measure
    with pytest.raises(MlflowException, match="not found"):
        client.get_model_version_by_alias("ner", "candidate")
    result = promote(PromotionConfig(**gate, min_f1=round(max(0.0, f1 - 0.05), 4)))
    assert str(client.get_model_version_by_alias("ner", "candidate").version) == version
    assert "champion_f1_micro" not in mlflow.get_run(result.evaluation_run_id).data.metrics


def _mlflow_run(tracking: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "promote", "--env-manager", "local", *args]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)


@pytest.mark.slow
def test_gate_through_the_mlflow_project(tiny_tagger, worse_tagger, own_conll, tracking):
    client = mlflow.MlflowClient()
    log_and_stage(tiny_tagger)
    worse = _register(worse_tagger)
    before = _where(client)
    gate = ["-P", f"eval_conll={own_conll}", "-P", "max_f1_drop=0.01", "-P", "to_alias=production"]
    refused = _mlflow_run(tracking, "-P", f"version={worse}", *gate)
    assert refused.returncode != 0
    assert "fails the quality gate" in refused.stderr and "max_f1_drop 0.01" in refused.stderr, refused.stderr[-3000:]
    assert _where(client) == before
    equal = _register(tiny_tagger, backend="torch")
    accepted = _mlflow_run(tracking, "-P", f"version={equal}", *gate, "-P", "min_f1=0.5")
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert _where(client)[0] == equal
    assert client.get_model_version("ner", equal).tags[EVALUATION_RUN_TAG]


@pytest.mark.slow
def test_gate_across_two_tracking_servers_on_s3(tiny_tagger, worse_tagger, own_conll, monkeypatch, request):
    """The copy lands and is verified in the target, but only a challenger that passes gets the alias."""
    from test_s3_promotion import _client, _log, _promote, _use

    source, destination, s3_server = (request.getfixturevalue(n) for n in ("source_server", "target_server", "s3"))
    _use(source.uri, monkeypatch)
    name = "ner-gated"
    good, worse, equal = _log(tiny_tagger, name), _log(worse_tagger, name), _log(tiny_tagger, name, backend="torch")
    options = dict(
        name=name,
        tracking_uri=source.uri,
        target_tracking_uri=destination.uri,
        target_artifact_location="s3://production/gated",
        to_alias="production",
        to_stage="Production",
        eval_conll=str(own_conll),
    )
    first = _promote(version=good, min_f1=0.0, **options)  # no champion yet: only the absolute threshold
    target = _client(destination.uri)

    def holder():
        stages = {str(v.version): v.current_stage for v in target.search_model_versions(f"name='{name}'")}
        return str(target.get_model_version_by_alias(name, "production").version), stages

    before = holder()
    steps: list[str] = []
    with pytest.raises(QualityGateError, match="max_f1_drop 0.01") as refused:
        _promote(progress=steps.append, version=worse, max_f1_drop=0.01, **options)
    assert any(step.startswith("verified copy") for step in steps)  # the gate ran after the copy was verified
    copies = target.search_model_versions(f"name='{name}'")
    assert len(copies) == 2 and holder()[0] == first.version  # the copy is there, the alias did not move
    assert {v: s for v, s in holder()[1].items() if v in before[1]} == before[1]
    run = target.get_run(refused.value.run_id)  # the evaluation run lives on the target server
    ours, theirs = run.data.metrics["f1_micro"], run.data.metrics["champion_f1_micro"]
    assert ours < theirs - 0.01 and f"{ours:.4f}" in str(refused.value) and f"{theirs:.4f}" in str(refused.value)
    stored = [key for key, _ in s3_server.objects("production") if refused.value.run_id in key]
    assert any(key.endswith("per_label_f1.png") for key in stored), stored  # its artifacts in the target bucket

    accepted = _promote(version=equal, max_f1_drop=0.0, **options)
    assert holder()[0] == accepted.version != first.version
    assert target.get_model_version(name, accepted.version).tags[EVALUATION_RUN_TAG] == accepted.evaluation_run_id
    metrics = target.get_run(accepted.evaluation_run_id).data.metrics
    assert metrics["f1_micro"] == metrics["champion_f1_micro"]


@pytest.mark.slow
def test_a_gated_promotion_says_each_step_once_in_one_format(tiny_tagger, own_conll):
    """Issue 23, items 5 and 6: our lines in one format (time, level, logger, message), none twice; MLflow's
    evaluator mechanics ("Testing metrics on first row...") not narrated; no progress bar for the champion."""
    import logging
    import re

    log_and_stage(tiny_tagger)
    version = _register(tiny_tagger, backend="torch")
    narrated = []

    class Catch(logging.Handler):
        def emit(self, record):
            narrated.append(record.getMessage())

    catch = Catch(level=logging.DEBUG)
    logging.getLogger("mlflow.models.evaluation").addHandler(catch)
    try:
        args = ["promote", "--name", "ner", "--version", version, "--to-alias", "production"]
        gate = ["--eval-conll", str(own_conll), "--limit", "12", "--max-f1-drop", "0.01"]
        out = CliRunner().invoke(main, [*args, *gate])
    finally:
        logging.getLogger("mlflow.models.evaluation").removeHandler(catch)
    assert out.exit_code == 0, out.output
    assert not [m for m in narrated if "Testing metrics" in m]
    ours = [line for line in out.stderr.splitlines() if line.strip() and "Downloading artifacts" not in line]
    pattern = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) [\w.]+: "
    assert ours and [line for line in ours if not re.match(pattern, line)] == []
    messages = [line.split(": ", 1)[1] for line in ours]
    assert len(messages) == len(set(messages)), messages
    assert any("passed the quality gate" in m for m in messages) and any(
        m.startswith("Evaluated ner v") for m in messages
    )
    assert out.stderr.count("Downloading artifacts:   0%") <= 1  # the source's download only
