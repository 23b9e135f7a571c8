"""`predict`, `verify`, `fetch` and `evaluate` take the same model references, and their errors give the next step."""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner
from conftest import log_and_stage

from mlflow_flavor.cli.commands import main

URI = "models:/ner/Production"
HINTS = ("--tracking-uri", "MLFLOW_TRACKING_URI")


@pytest.fixture()
def no_tracking_uri(tmp_path, monkeypatch):
    """A user in a fresh folder who set no tracking URI (the autouse fixture set one: take it back)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _commands(conll):
    return {
        "predict": ["predict", URI, "Some text ."],
        "fetch": ["fetch", URI],
        "verify": ["verify", URI],
        "evaluate": ["evaluate", URI, "--conll", str(conll)],
    }


@pytest.mark.parametrize("command", ["predict", "fetch", "verify", "evaluate"])
def test_no_tracking_uri_creates_no_store_and_says_how_to_set_one(no_tracking_uri, tmp_path, command):
    conll = tmp_path / "test.conll"
    conll.write_text("Paris B-LOC\n")
    result = CliRunner().invoke(main, _commands(conll)[command])
    assert result.exit_code == 2, result.output
    assert f"MLflow's default store sqlite:///{no_tracking_uri / 'mlflow.db'} does not exist" in result.stderr
    assert all(hint in result.stderr for hint in HINTS) and "Traceback" not in result.output
    assert list(no_tracking_uri.iterdir()) == []  # no empty mlflow.db left behind


def test_a_model_not_in_the_registry_names_the_registry_searched(tracking):
    for args in (
        ["predict", URI, "x"],
        ["fetch", URI],
        ["verify", URI],
        ["predict", URI, "x", "--tracking-uri", tracking],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert f"Could not fetch {URI} from {tracking}: Registered Model with name=ner not found" in result.stderr
        assert "Is it in another registry?" in result.stderr and all(hint in result.stderr for hint in HINTS)


def test_verify_takes_model_uris_like_predict_and_fetch(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path / "cache"))
    log_and_stage(str(tiny_bundle))
    for uri in (URI, "models:/ner@production", "models:/ner/1"):
        result = CliRunner().invoke(main, ["verify", uri])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("OK: ") and result.stdout.strip().endswith(f"files verified in {uri}")
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_what_is_not_a_model_gets_the_next_step(tiny_bundle, tiny_tagger_file, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["predict", str(empty), "x"], ["verify", str(empty)], ["fetch", str(empty)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"{empty} holds neither bundle.json (a bundle) nor MLmodel (an MLflow model)" in result.stderr
        assert "models:/ner@production" in result.stderr  # what a reference is
    # the folder above a bundle: the bundle is named
    result = runner.invoke(main, ["predict", str(tiny_bundle.parent), "x"])
    assert f"did you mean {tiny_bundle}?" in result.stderr
    # a Flair .pt file: export it or log it
    result = runner.invoke(main, ["predict", str(tiny_tagger_file), "x"])
    assert f"flair-mlflow log --model {tiny_tagger_file}" in result.stderr and "flair-mlflow export" in result.stderr
    # a path that does not exist: said so, with its absolute path
    result = runner.invoke(main, ["verify", "no-such-bundle"])
    assert result.exit_code == 2 and "no-such-bundle is not a model reference:" in result.stderr
    assert "does not exist" in result.stderr and "/no-such-bundle does not exist" in result.stderr


def test_a_bundle_where_an_mlflow_model_is_needed_says_how_to_make_one(tiny_bundle):
    import mlflow_flavor

    result = CliRunner().invoke(main, ["fetch", str(tiny_bundle)])
    assert result.exit_code == 2
    assert f"{tiny_bundle} is a bundle, not an MLflow model" in result.stderr
    assert f"flair-mlflow log --model {tiny_bundle}" in result.stderr
    with pytest.raises(mlflow.exceptions.MlflowException, match="is a bundle, not an MLflow model"):
        mlflow_flavor.load_model(str(tiny_bundle))
    # while predict and verify take it as it is
    assert CliRunner().invoke(main, ["verify", str(tiny_bundle)]).exit_code == 0
