"""Promotion within one SQLite registry: digests sealed at registration, refusals, rollback, redaction."""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner
from conftest import log_and_stage

from exporter.errors import ConfigError
from mlflow_flavor.cli.commands import main
from mlflow_flavor.fetch import BUNDLE_DIGEST_TAG, FILES_DIGEST_TAG
from mlflow_flavor.redact import public_uri, redact
from mlflow_flavor.registry.errors import PromotionError, SourceVerificationError
from mlflow_flavor.registry.promote import PromotionConfig, promote


def test_registration_seals_the_version_with_its_digests(tiny_bundle):
    info = log_and_stage(str(tiny_bundle))
    tags = mlflow.MlflowClient().get_model_version("ner", info.registered_model_version).tags
    assert len(tags[BUNDLE_DIGEST_TAG]) == 64 and len(tags[FILES_DIGEST_TAG]) == 64
    assert tags[BUNDLE_DIGEST_TAG] == info.flavors["flair_mlflow"]["manifest_sha256"]


def test_untagged_versions_are_refused_unless_allowed(tiny_bundle):
    import mlflow_flavor

    with mlflow.start_run():
        info = mlflow_flavor.log_model(str(tiny_bundle), name="model")
    version = mlflow.register_model(info.model_uri, "plain").version  # plain MLflow: no digests recorded
    with pytest.raises(SourceVerificationError, match="allow-untagged"):
        promote(PromotionConfig(name="plain", version=str(version), to_alias="production"))
    result = promote(PromotionConfig(name="plain", version=str(version), to_alias="production", allow_untagged=True))
    assert (result.version, result.created) == (str(version), False)
    assert str(mlflow.MlflowClient().get_model_version_by_alias("plain", "production").version) == str(version)
    # the CLI takes the flag alone or with a value (the MLproject entry passes -P allow_untagged=true|false)
    runner = CliRunner()
    base = ["promote", "--name", "plain", "--version", str(version), "--to-alias", "checked"]
    refused = runner.invoke(main, [*base, "--allow-untagged", "false"])
    assert refused.exit_code == 2 and "allow-untagged" in refused.output
    for extra in (["--allow-untagged"], ["--allow-untagged", "true"]):
        assert runner.invoke(main, [*base, *extra]).exit_code == 0
    assert str(mlflow.MlflowClient().get_model_version_by_alias("plain", "checked").version) == str(version)


def test_a_failed_alias_move_puts_the_stage_back(tiny_bundle):
    client = mlflow.MlflowClient()
    first = log_and_stage(str(tiny_bundle)).registered_model_version  # Production, @production
    second = log_and_stage(str(tiny_bundle)).registered_model_version
    promote(PromotionConfig(name="ner", version=str(first), to_stage="Production", to_alias="production"))
    assert client.get_model_version("ner", str(second)).current_stage == "Archived"
    # MLflow refuses the alias "latest" after the stage has moved: the stage move must be undone
    with pytest.raises(PromotionError, match="put back as they were") as error:
        promote(PromotionConfig(name="ner", version=str(second), to_stage="Production", to_alias="latest"))
    assert "latest" in str(error.value)
    assert client.get_model_version("ner", str(first)).current_stage == "Production"
    assert client.get_model_version("ner", str(second)).current_stage == "Archived"
    assert str(client.get_model_version_by_alias("ner", "production").version) == str(first)


def test_promote_cli_errors_are_short_and_clear(tiny_bundle):
    log_and_stage(str(tiny_bundle))
    runner = CliRunner()
    missing = runner.invoke(main, ["promote", "--name", "ner", "--version", "7", "--to-alias", "x"])
    assert missing.exit_code == 2 and "version 7 was not found" in missing.output
    nowhere = runner.invoke(main, ["promote", "--name", "ner", "--version", "1"])
    assert nowhere.exit_code == 2 and "--to-alias and/or --to-stage" in nowhere.output
    bad = runner.invoke(main, ["promote", "--name", "ner", "--version", "one", "--to-alias", "x"])
    assert bad.exit_code == 2 and "version number or @alias" in bad.output
    for out in (missing, nowhere, bad):
        assert "Traceback" not in out.output
    by_alias = runner.invoke(main, ["promote", "--name", "ner", "--version", "@production", "--to-alias", "champion"])
    assert by_alias.exit_code == 0, by_alias.output
    assert str(mlflow.MlflowClient().get_model_version_by_alias("ner", "champion").version) == "1"


def test_config_validation():
    with pytest.raises(ConfigError, match="s3://bucket"):
        PromotionConfig(name="ner", version="1", to_alias="a", target_artifact_location="prod-bucket")
    with pytest.raises(ConfigError, match="Staging, Production"):
        PromotionConfig(name="ner", version="1", to_stage="Prod")
    assert not PromotionConfig(name="ner", version="1", to_alias="a").copies
    assert PromotionConfig(name="ner", version="1", to_alias="a", target_name="ner-prod").copies
    same = mlflow.get_tracking_uri()
    assert not PromotionConfig(name="ner", version="1", to_alias="a", target_tracking_uri=same + "/").copies


def test_credentials_never_survive_uris_or_messages(monkeypatch):
    assert public_uri("https://ops:pa/ss@w0rd@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert public_uri("https://mlflow.example/?token=abc123&x=1") == "https://mlflow.example/?token=***&x=1"
    assert public_uri("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-from-env")
    message = redact("PUT http://u:p@ss@h/b failed with key s3cr3t-from-env (X-Amz-Signature=abcdef)")
    assert "s3cr3t" not in message and "p@ss" not in message and "abcdef" not in message


def test_an_alias_differing_only_by_case_is_warned_about(tiny_bundle, caplog):
    """MLflow's aliases are case-sensitive: `Production` beside `production` is a second alias, said so."""
    log_and_stage(str(tiny_bundle))
    log_and_stage(str(tiny_bundle))  # v2 holds @production
    with caplog.at_level("WARNING", logger="mlflow_flavor.registry.versions"):
        promote(PromotionConfig(name="ner", version="2", to_alias="production"))  # the same spelling: no warning
    assert not [r for r in caplog.records if "differs only by case" in r.getMessage()]
    result = CliRunner().invoke(main, ["promote", "--name", "ner", "--version", "1", "--to-alias", "Production"])
    assert result.exit_code == 0, result.output
    assert "Alias 'Production' differs only by case from 'production' of model ner" in result.stderr
    assert "still points to version 2" in result.stderr and "give 'production'" in result.stderr
    aliases = mlflow.MlflowClient().get_registered_model("ner").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"Production": "1", "production": "2"}
    caplog.clear()
    with caplog.at_level("WARNING", logger="mlflow_flavor.registry.versions"):
        promote(PromotionConfig(name="ner", version="2", to_alias="PRODUCTION"))
    (warning,) = [r.getMessage() for r in caplog.records if "differs only by case" in r.getMessage()]
    assert "from 'Production' and 'production' of model ner" in warning
