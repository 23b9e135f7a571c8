"""A stage and the alias of its name (``Production`` / ``production``) never end on different versions unasked
(a new user's `mlflow run . -e promote -P version=1 -P to_alias=production` left ``models:/ner/Production`` on
v2 and ``models:/ner@production`` on v1, silently)."""

from __future__ import annotations

import logging

import mlflow
import pytest
from conftest import log_and_stage

from mlflow_flavor.registry.promote import PromotionConfig, promote
from mlflow_flavor.registry.versions import stage_and_alias


@pytest.fixture
def three_versions():
    """Versions 1-3 of ``ner`` (registry entries only), v3 in Production and under @production."""
    client = mlflow.MlflowClient()
    client.create_registered_model("ner")
    for _ in range(3):
        client.create_model_version("ner", source="file:///nowhere")
    stage_and_alias("ner", "3", "Production", "production", client=client)
    return client


def _names(client):
    production = [str(v.version) for v in client.search_model_versions("name='ner'") if v.current_stage == "Production"]
    return production, str(client.get_model_version_by_alias("ner", "production").version)


def test_an_alias_alone_moves_its_stage_too(three_versions):
    moved = stage_and_alias("ner", "1", alias="production", client=three_versions)
    assert (moved.stage, moved.alias) == ("Production", "production")
    assert _names(three_versions) == (["1"], "1")
    assert three_versions.get_model_version("ner", "3").current_stage == "Archived"


def test_a_stage_alone_moves_its_alias_too(three_versions):
    moved = stage_and_alias("ner", "2", stage="production", client=three_versions)  # any case
    assert (moved.stage, moved.alias) == ("Production", "production")
    assert _names(three_versions) == (["2"], "2")


def test_unpaired_names_stay_apart_only_when_asked_and_are_warned_about(three_versions, caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow_flavor.registry.versions"):
        stage_and_alias("ner", "1", alias="production", client=three_versions, pair=False)
    assert _names(three_versions) == (["3"], "1")
    assert "models:/ner/Production serves version 3 while models:/ner@production serves version 1" in caplog.text


def test_other_names_and_unused_twins_are_left_alone(three_versions):
    stage_and_alias("ner", "1", alias="Production", client=three_versions)  # aliases are case-sensitive: another
    assert _names(three_versions) == (["3"], "3")
    stage_and_alias("ner", "1", alias="rollback", client=three_versions)  # not a stage's name
    assert _names(three_versions) == (["3"], "3")
    stage_and_alias("ner", "2", alias="staging", client=three_versions)  # no version in Staging: nothing differs
    assert three_versions.get_model_version("ner", "2").current_stage == "None"
    stage_and_alias("ner", "2", stage="Staging", client=three_versions)  # its alias exists now: it moves along
    assert str(three_versions.get_model_version_by_alias("ner", "staging").version) == "2"


@pytest.mark.slow
def test_promote_to_the_alias_alone_moves_both(tiny_bundle):
    """The README's gated promotion without --to-stage, as the user ran it."""
    first = log_and_stage(str(tiny_bundle)).registered_model_version
    second = log_and_stage(str(tiny_bundle)).registered_model_version
    result = promote(PromotionConfig(name="ner", version=str(first), to_alias="production"))
    assert (result.stage, result.alias) == ("Production", "production")
    client = mlflow.MlflowClient()
    assert client.get_model_version("ner", str(first)).current_stage == "Production"
    assert client.get_model_version("ner", str(second)).current_stage == "Archived"
    assert _names(client) == ([str(first)], str(first))
    kept = promote(PromotionConfig(name="ner", version=str(second), to_alias="production", pair=False))
    assert (kept.stage, kept.alias) == (None, "production")
    assert client.get_model_version("ner", str(first)).current_stage == "Production"


@pytest.mark.slow
def test_the_command_line_and_the_log_job_take_pair(tiny_bundle):
    """promote --no-pair / --pair false (what -P pair=false passes), and log --no-pair."""
    from click.testing import CliRunner

    from mlflow_flavor.cli.commands import main
    from mlflow_flavor.cli.job import run_log_job

    client = mlflow.MlflowClient()
    for _ in range(3):
        log_and_stage(str(tiny_bundle))  # v3 in Production and @production
    runner = CliRunner()
    for version, extra in (("1", ["--no-pair"]), ("2", ["--pair", "false"])):
        out = runner.invoke(
            main, ["promote", "--name", "ner", "--version", version, "--to-alias", "production", *extra]
        )
        assert out.exit_code == 0, out.output
        assert _names(client) == (["3"], version)
    out = runner.invoke(main, ["promote", "--name", "ner", "--version", "1", "--to-alias", "production"])
    assert out.exit_code == 0, out.output
    assert _names(client) == (["1"], "1")
    result = run_log_job(str(tiny_bundle), stage=None, alias="production", pair=False)
    assert (result.stage, result.alias) == (None, "production")
    assert _names(client) == (["1"], result.version)
    result = run_log_job(str(tiny_bundle), stage=None, alias="production")
    assert (result.stage, result.alias) == ("Production", "production")
    assert _names(client) == ([result.version], result.version)
