"""S3-backed registries for real: SeaweedFS on loopback, two ``mlflow server`` processes, promotion between them.

Topology (module-scoped):
    SeaweedFS ── bucket "staging"    ◄── source server  (mlflow server --artifacts-destination: proxied)
              └─ bucket "production" ◄── target server  (mlflow server --no-serve-artifacts: clients write S3)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys

import pytest
import yaml
from conftest import entities_of
from s3servers import SECRET_KEY, SeaweedS3, TrackingServer
from servers import model_server, post_json

# a password in a tracking URI, percent-encoded as URIs need it ("/" and "@" inside)
URI_SECRET = "uri-pass%2Fword%40" + SECRET_KEY[-6:][::-1]

pytestmark = pytest.mark.slow

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Siemens opened an office in Berlin ."]
OUTPUTS: list[str] = []  # every message and output of this module, searched for the secret at the end


class _Collect(logging.Handler):
    def emit(self, record):
        OUTPUTS.append(self.format(record))


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    server.create_bucket("staging")
    server.create_bucket("production")
    handler = _Collect(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in server.env.items():
            mp.setenv(key, value)
        # fail fast when a server is down (MLflow's default retries back off for minutes)
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        mp.setenv("AWS_MAX_ATTEMPTS", "2")
        yield server
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(previous_level)
    server.stop()


@pytest.fixture(scope="module")
def source_server(s3, tmp_path_factory):
    server = TrackingServer(
        tmp_path_factory.mktemp("source-server"), s3.env, ["--artifacts-destination", "s3://staging/mlflow"]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def target_server(s3, tmp_path_factory):
    server = TrackingServer(
        tmp_path_factory.mktemp("target-server"),
        s3.env,
        ["--default-artifact-root", "s3://production/mlflow", "--no-serve-artifacts"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mid_tagger(tmp_path_factory):
    """A tagger whose ONNX encoder is over 8 MB, so that S3 transfers use multipart."""
    from tinymodels import build_tiny_bert, build_tiny_tagger

    return build_tiny_tagger(build_tiny_bert(tmp_path_factory.mktemp("mid-bert"), hidden=256, layers=4))


def _use(uri: str, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("flair-s3-tests")


def _log(model, name: str, **kwargs):
    import mlflow

    import mlflow_flavor

    # this file tests artifact stores, not parity: the gate checks the texts the tests compare. (A random
    # mid-size tagger has near-ties that float summation order can flip on the check set's long paragraphs.)
    kwargs.setdefault("parity_sentences", TEXTS)
    with mlflow.start_run():
        info = mlflow_flavor.log_model(model, name="model", registered_model_name=name, **kwargs)
    return str(info.registered_model_version)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _promote(progress=None, **kwargs):
    from mlflow_flavor.registry.promote import PromotionConfig, promote

    def say(message):
        OUTPUTS.append(message)
        if progress:
            progress(message)

    return promote(PromotionConfig(**kwargs), progress=say)


def test_s3_artifact_root_log_register_load(s3, mid_tagger, tmp_path, monkeypatch):
    """SQLite registry, artifacts straight in S3 (MLFLOW_S3_ENDPOINT_URL): multipart upload, verified cached load."""
    import mlflow

    import mlflow_flavor

    experiment = mlflow.create_experiment("s3-direct", artifact_location="s3://staging/direct")
    mlflow.set_experiment(experiment_id=experiment)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path / "cache"))
    _log(mid_tagger, "ner-direct")
    _client(mlflow.get_tracking_uri()).transition_model_version_stage("ner-direct", "1", "Production")

    objects = {key: None for key, _ in s3.objects("staging") if key.startswith("direct/")}
    onnx_key = next(k for k in objects if k.endswith("bundle/encoder.onnx"))
    head = s3.client().head_object(Bucket="staging", Key=onnx_key)
    assert head["ContentLength"] > 8 * 1024 * 1024
    assert "-" in head["ETag"], "an encoder over 8 MB should arrive through a multipart upload"

    expected = entities_of(mid_tagger, TEXTS)
    pyfunc = mlflow.pyfunc.load_model("models:/ner-direct/Production")
    assert [[(e["start"], e["end"], e["label"]) for e in row] for row in pyfunc.predict(TEXTS)] == expected

    # mlflow_flavor.load_model caches the verified download: a second load reads nothing but MLmodel from S3
    model = mlflow_flavor.load_model("models:/ner-direct/Production")
    assert entities_of(model, TEXTS) == expected
    cached = [p for p in (tmp_path / "cache" / "models").iterdir() if not p.name.startswith(".")]
    assert len(cached) == 1
    original = s3.client().get_object(Bucket="staging", Key=onnx_key)["Body"].read()
    s3.client().put_object(Bucket="staging", Key=onnx_key, Body=original[:-16] + b"\0" * 16)
    try:
        again = mlflow_flavor.load_model("models:/ner-direct/Production")  # from the cache, not the damaged object
        assert entities_of(again, TEXTS) == expected
        from exporter.errors import ChecksumError

        with pytest.raises(ChecksumError, match="sha256"):  # without the cache the damage is caught
            mlflow_flavor.fetch_model("models:/ner-direct/Production", use_cache=False)
    finally:
        s3.client().put_object(Bucket="staging", Key=onnx_key, Body=original)


def test_proxied_server_log_load(source_server, tiny_tagger, monkeypatch, s3):
    import mlflow

    _use(source_server.uri, monkeypatch)
    version = _log(tiny_tagger, "ner-proxied")
    assert any(key.startswith("mlflow/") and key.endswith("bundle/bundle.json") for key, _ in s3.objects("staging"))
    tags = _client(source_server.uri).get_model_version("ner-proxied", version).tags
    assert len(tags["flair_mlflow.bundle_sha256"]) == 64
    pyfunc = mlflow.pyfunc.load_model(f"models:/ner-proxied/{version}")
    got = [[(e["start"], e["end"], e["label"]) for e in row] for row in pyfunc.predict(TEXTS)]
    assert got == entities_of(tiny_tagger, TEXTS)


def test_promote_within_one_registry(source_server, tiny_tagger, monkeypatch):
    from click.testing import CliRunner

    from mlflow_flavor.cli.commands import main

    _use(source_server.uri, monkeypatch)
    first = _log(tiny_tagger, "ner-local")
    second = _log(tiny_tagger, "ner-local", backend="torch")
    client = _client(source_server.uri)
    result = _promote(name="ner-local", version=first, to_alias="production", to_stage="Production")
    assert (result.version, result.created) == (first, False)
    assert client.get_model_version_by_alias("ner-local", "production").version == first

    runner = CliRunner()
    out = runner.invoke(
        main,
        ["promote", "--name", "ner-local", "--version", second, "--to-alias", "production"]
        + ["--to-stage", "Production", "--tracking-uri", source_server.uri],
    )
    OUTPUTS.append(out.output)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output[out.output.index("{") :])["version"] == second
    assert client.get_model_version_by_alias("ner-local", "production").version == second
    assert client.get_model_version("ner-local", first).current_stage == "Archived"
    assert client.get_model_version("ner-local", second).current_stage == "Production"
    assert len(client.search_model_versions("name='ner-local'")) == 2  # nothing copied

    bad = runner.invoke(main, ["promote", "--name", "ner-local", "--version", "99", "--to-alias", "x"])
    OUTPUTS.append(bad.output)
    assert bad.exit_code == 2 and "not found" in bad.output and "Traceback" not in bad.output


def test_promote_across_servers_and_buckets(source_server, target_server, tiny_tagger, s3, monkeypatch, tmp_path):
    import mlflow

    _use(source_server.uri, monkeypatch)
    version = _log(tiny_tagger, "ner")
    # the source URI as users often write it, with credentials inside: they must not travel anywhere
    secret_uri = source_server.uri.replace("http://", f"http://ops:{URI_SECRET}@")
    steps: list[str] = []
    options = dict(
        name="ner",
        version=version,
        tracking_uri=secret_uri,
        target_tracking_uri=target_server.uri,
        target_artifact_location="s3://production/promoted",
        to_stage="Production",
        to_alias="production",
    )
    result = _promote(progress=steps.append, **options)
    assert result.created and result.name == "ner"
    assert any(s.startswith("verified copy") for s in steps)

    target = _client(target_server.uri)
    copy = target.get_model_version("ner", result.version)
    assert copy.tags["flair_mlflow.source.tracking_uri"] == source_server.uri
    assert copy.tags["flair_mlflow.source.name"] == "ner"
    assert copy.tags["flair_mlflow.source.version"] == version
    assert copy.tags["flair_mlflow.bundle_sha256"] == result.bundle_sha256
    assert copy.tags["flair_mlflow.verified"] == "true"
    assert target.get_model_version_by_alias("ner", "production").version == result.version
    promoted = {key: body for key, body in s3.objects("production") if key.startswith("promoted/")}
    staged = {body for key, body in s3.objects("staging")}
    bundle_files = {key.split("/model/", 1)[1]: body for key, body in promoted.items()}
    assert "bundle/bundle.json" in bundle_files and "MLmodel" in bundle_files
    for name, body in bundle_files.items():  # byte for byte what the source holds
        assert body in staged, name

    again = _promote(**options)  # idempotent: no second version
    assert (again.version, again.created) == (result.version, False)
    assert len(target.search_model_versions("name='ner'")) == 1

    # a damaged object in the target bucket: the re-run finds the copy, uploads it again, verifies, no new version
    damaged = next(k for k in promoted if k.endswith("/model/bundle/model.pt"))
    s3.client().put_object(Bucket="production", Key=damaged, Body=b"not a model")
    steps.clear()
    repaired = _promote(progress=steps.append, **options)
    assert (repaired.version, repaired.created) == (result.version, False)
    assert any("uploading it again" in step for step in steps), steps
    assert s3.client().get_object(Bucket="production", Key=damaged)["Body"].read() == promoted[damaged]
    assert len(target.search_model_versions("name='ner'")) == 1

    _use(target_server.uri, monkeypatch)
    pyfunc = mlflow.pyfunc.load_model("models:/ner/Production")
    got = [[(e["start"], e["end"], e["label"]) for e in row] for row in pyfunc.predict(TEXTS)]
    assert got == entities_of(tiny_tagger, TEXTS)
    env = {"MLFLOW_TRACKING_URI": target_server.uri, **s3.env}
    with model_server("models:/ner@production", tmp_path / "serve.log", env=env) as url:
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS})
    OUTPUTS.append((tmp_path / "serve.log").read_text())
    assert status == 200
    assert [[(e["start"], e["end"], e["label"]) for e in row] for row in body["predictions"]] == got


def test_tampered_source_is_refused(source_server, target_server, tiny_tagger, s3, monkeypatch):
    from mlflow_flavor.registry.errors import SourceVerificationError

    _use(source_server.uri, monkeypatch)
    version = _log(tiny_tagger, "ner-tampered")
    location = _client(source_server.uri).get_model_version_download_uri("ner-tampered", version)
    assert location.startswith("mlflow-artifacts:/"), location  # proxied: the server maps it to s3://staging/mlflow
    key = "mlflow/" + location.removeprefix("mlflow-artifacts:/").strip("/") + "/bundle/model.pt"
    body = s3.client().get_object(Bucket="staging", Key=key)["Body"].read()
    s3.client().put_object(Bucket="staging", Key=key, Body=body.replace(b"PER", b"LOC", 1))
    options = dict(
        name="ner-tampered", version=version, tracking_uri=source_server.uri, target_tracking_uri=target_server.uri
    )
    with pytest.raises(SourceVerificationError, match="model.pt") as error:
        _promote(to_alias="production", **options)
    OUTPUTS.append(str(error.value))
    assert "Refused" in str(error.value)
    s3.client().put_object(Bucket="staging", Key=key, Body=body)  # restored: it would promote again

    # a rewrite outside the bundle (the code the pyfunc imports): the record in MLmodel names the file
    code_key = key.replace("bundle/model.pt", "code/mlflow_flavor/pyfunc.py")
    code = s3.client().get_object(Bucket="staging", Key=code_key)["Body"].read()
    injected = code + b"\nimport os  # injected\n"
    s3.client().put_object(Bucket="staging", Key=code_key, Body=injected)
    with pytest.raises(SourceVerificationError, match="code/mlflow_flavor/pyfunc.py: sha256") as error:
        _promote(to_alias="production", **options)
    OUTPUTS.append(str(error.value))

    # a consistent rewrite (MLmodel's record updated as well): only the registry's digest sees it
    mlmodel_key = key.replace("bundle/model.pt", "MLmodel")
    mlmodel = yaml.safe_load(s3.client().get_object(Bucket="staging", Key=mlmodel_key)["Body"].read())
    mlmodel["flavors"]["flair_mlflow"]["files_sha256"]["code/mlflow_flavor/pyfunc.py"] = hashlib.sha256(
        injected
    ).hexdigest()
    s3.client().put_object(Bucket="staging", Key=mlmodel_key, Body=yaml.safe_dump(mlmodel).encode())
    with pytest.raises(SourceVerificationError, match="files sha256") as error:
        _promote(to_alias="production", **options)
    OUTPUTS.append(str(error.value))
    assert _client(target_server.uri).search_model_versions("name='ner-tampered'") == []


@pytest.mark.parametrize("stop_after", ["verified source", "registered"])
def test_s3_stopped_midway_leaves_target_alias_and_rerun_completes(
    stop_after, source_server, target_server, tiny_tagger, s3, monkeypatch
):
    from mlflow_flavor.registry.errors import PromotionError

    name = "ner-outage-" + stop_after.split()[0]
    _use(source_server.uri, monkeypatch)
    old = _log(tiny_tagger, name)
    new = _log(tiny_tagger, name, backend="torch")
    options = dict(tracking_uri=source_server.uri, target_tracking_uri=target_server.uri, to_alias="production")
    before = _promote(name=name, version=old, **options)
    target = _client(target_server.uri)
    assert target.get_model_version_by_alias(name, "production").version == before.version

    def stop_s3(message):
        if message.startswith(stop_after):
            s3.stop()

    steps: list[str] = []
    try:
        with pytest.raises(PromotionError, match="were not changed") as error:
            _promote(name=name, version=new, progress=lambda m: (steps.append(m), stop_s3(m)), **options)
        OUTPUTS.append(str(error.value))
    finally:
        if s3.process is None:
            s3.start()
    assert s3.process is not None and any(step.startswith(stop_after) for step in steps)
    assert "Could not connect" in str(error.value)  # the S3 outage is what stopped it
    assert target.get_model_version_by_alias(name, "production").version == before.version

    after = _promote(name=name, version=new, **options)
    assert target.get_model_version_by_alias(name, "production").version == after.version != before.version
    assert len(target.search_model_versions(f"name='{name}'")) == 2  # the old copy and exactly one new one


def test_promote_cli_in_a_subprocess_and_no_secret_anywhere(source_server, target_server, s3, tmp_path):
    """Runs last: the CLI's own output, both servers' logs and stores, and every stored object."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": source_server.uri, "MLFLOW_REGISTRY_URI": source_server.uri}
    command = [sys.executable, "-m", "mlflow_flavor.cli.commands", "-v", "promote", "--name", "ner", "--version", "1"]
    command += ["--target-tracking-uri", target_server.uri, "--to-alias", "champion"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    OUTPUTS.extend([completed.stdout, completed.stderr])
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    # the target's default artifact location differs from the earlier copy's: a new copy, version 2
    assert (result["created"], result["version"]) == (True, "2")
    assert _client(target_server.uri).get_model_version_by_alias("ner", "champion").version == "2"
    assert "verified copy ner v2" in completed.stderr

    for secret in (SECRET_KEY, URI_SECRET, URI_SECRET[-6:], "uri-pass"):
        leaks = [i for i, text in enumerate(OUTPUTS) if secret in text]
        assert not leaks, [OUTPUTS[i][:300] for i in leaks]
        for server in (source_server, target_server):
            assert secret.encode() not in server.db.read_bytes(), server.db
            assert secret not in server.log.read_text(errors="replace"), server.log
        for bucket in ("staging", "production"):
            for key, body in s3.objects(bucket):
                assert secret.encode() not in body, f"{bucket}/{key}"
