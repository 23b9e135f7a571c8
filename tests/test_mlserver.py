"""MLServer (the V2 inference protocol KServe and Seldon Core use): config files, and a real `mlserver start`."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from servers import free_port, post_json

from exporter.errors import ConfigError
from mlflow_flavor.tools.mlserver_config import RUNTIME, MLServerConfig, write_mlserver_config

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Maria Garcia flew from Madrid to Tokyo ."]


def test_config_files_name_the_runtime_the_uri_and_batching(tmp_path):
    config = MLServerConfig(
        "models:/ner@champion", name="ner", parallel_workers=2, max_batch_size=8, max_batch_time=0.01
    )
    written = write_mlserver_config(config, tmp_path / "srv")
    # MLServer's model repository: the model's settings in a folder named after it (or MLServer warns that the
    # name differs from the folder's), the server's at the top
    assert written == [tmp_path / "srv" / "ner" / "model-settings.json", tmp_path / "srv" / "settings.json"]
    model = json.loads(written[0].read_text())
    assert model == {
        "name": "ner",
        "implementation": RUNTIME,
        "parameters": {"uri": "models:/ner@champion"},
        "max_batch_size": 8,
        "max_batch_time": 0.01,
    }
    assert json.loads(written[1].read_text())["parallel_workers"] == 2
    assert sorted(p.name for p in (tmp_path / "srv").iterdir()) == ["ner", "settings.json"]
    assert [p.name for p in (tmp_path / "srv" / "ner").iterdir()] == ["model-settings.json"]


def test_config_replaces_the_old_flat_layout_and_refuses_another_models_settings(tmp_path):
    """The files this module wrote before (model-settings.json beside settings.json) would make MLServer load
    the model twice: replaced (another model of this runtime: moved into its own folder); a model-settings.json of another runtime is another model: refused, nothing
    written."""
    old = tmp_path / "srv" / "model-settings.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"name": "ner", "implementation": RUNTIME, "parameters": {"uri": "models:/ner/1"}}))
    write_mlserver_config(MLServerConfig("models:/ner/2", name="ner"), tmp_path / "srv")
    assert not old.exists()
    assert json.loads((tmp_path / "srv" / "ner" / "model-settings.json").read_text())["parameters"]["uri"] == (
        "models:/ner/2"
    )
    # an old flat file of another model of this runtime is kept: moved into the folder named after it
    old.write_text(json.dumps({"name": "topics", "implementation": RUNTIME, "parameters": {"uri": "models:/t/1"}}))
    write_mlserver_config(MLServerConfig("models:/ner/3", name="ner"), tmp_path / "srv")
    assert not old.exists()
    assert json.loads((tmp_path / "srv" / "topics" / "model-settings.json").read_text())["name"] == "topics"
    assert sorted(p.name for p in (tmp_path / "srv").iterdir()) == ["ner", "settings.json", "topics"]
    other = tmp_path / "other" / "model-settings.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"name": "sklearn", "implementation": "mlserver_sklearn.SKLearnModel"}))
    with pytest.raises(ConfigError, match="another model's settings"):
        write_mlserver_config(MLServerConfig("models:/ner/2", name="ner"), tmp_path / "other")
    assert sorted(p.name for p in other.parent.iterdir()) == ["model-settings.json"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_batch_size": 8}, "set both, or neither"),
        ({"max_batch_time": 0.1}, "set both, or neither"),
        ({"name": "a/b"}, "one path segment"),
        ({"name": ".."}, "one path segment"),
        ({"http_port": 9000, "grpc_port": 9000}, "must differ"),
        ({"parallel_workers": -1}, "parallel_workers"),
        ({"model_uri": "s3://AKIAXXX:secret@bucket/model"}, "carries credentials"),
        ({"model_uri": "https://host/m?X-Amz-Signature=abc"}, "carries credentials"),
    ],
)
def test_config_refuses_what_mlserver_would_not_do(options, message):
    with pytest.raises(ConfigError, match=message) as refused:
        MLServerConfig(**{"model_uri": "models:/ner/1", **options})
    assert "secret" not in str(refused.value) and "abc" not in str(refused.value)


def test_cli_writes_the_files_for_a_saved_model_and_refuses_other_directories(tiny_bundle, tmp_path):
    import mlflow_flavor
    from mlflow_flavor.cli import main

    model = tmp_path / "model"
    mlflow_flavor.save_model(str(tiny_bundle), model)
    result = CliRunner().invoke(main, ["mlserver-config", str(model), str(tmp_path / "srv"), "--name", "ner"])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "srv" / "ner" / "model-settings.json").read_text())
    assert settings["parameters"]["uri"] == str(model.resolve())
    refused = CliRunner().invoke(main, ["mlserver-config", str(tmp_path / "srv"), str(tmp_path / "other")])
    assert refused.exit_code == 2 and "not a flair-mlflow MLflow model" in refused.output
    missing = CliRunner().invoke(main, ["mlserver-config", str(tmp_path / "modle"), str(tmp_path / "y")])
    assert missing.exit_code == 2 and "no such directory, and not a URI" in missing.output
    assert not (tmp_path / "y").exists()
    bad = CliRunner().invoke(main, ["mlserver-config", str(model), str(tmp_path / "x"), "--max-batch-size", "4"])
    assert bad.exit_code == 2 and "set both, or neither" in bad.output and not (tmp_path / "x").exists()


def _infer(server: str, name: str, inputs: list[dict], parameters: dict | None = None):
    body = {"parameters": {"content_type": "pd", **(parameters or {})}, "inputs": inputs}
    return post_json(f"{server}/v2/models/{name}/infer", body)


def _column(response: dict, name: str) -> list:
    (output,) = [o for o in response["outputs"] if o["name"] == name]
    assert output["parameters"]["content_type"] == "pd_json"
    return [json.loads(cell) for cell in output["data"]]


@pytest.mark.slow
def test_mlserver_answers_v2_requests_with_each_texts_answer(tiny_tagger, tiny_bert, tmp_path):
    """`mlserver start` on the written settings: parallel workers (MLServer's default, which crashed with uvloop
    0.22), MLServer's adaptive batching, a tagger and a pair model, V2 and MLflow's /invocations."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    import mlflow
    from tinymodels import build_text_pair_model

    import mlflow_flavor
    from mlflow_flavor.tools.serving import serve_on_mlserver

    tagger_path, pair_path = tmp_path / "tagger", tmp_path / "pairs"
    mlflow_flavor.save_model(tiny_tagger, tagger_path)
    from flair.embeddings import TransformerDocumentEmbeddings

    pair_model = build_text_pair_model(TransformerDocumentEmbeddings(str(tiny_bert), fine_tune=False))
    mlflow_flavor.save_model(pair_model, pair_path)
    http = free_port()
    ports = {"http_port": http, "grpc_port": free_port(), "metrics_port": free_port()}
    srv = tmp_path / "srv"
    # two models in one server: a folder each, the server settings at the top (the last written: the tagger's)
    batching = {"max_batch_size": 8, "max_batch_time": 0.02}
    write_mlserver_config(MLServerConfig(str(pair_path), name="pairs", **batching, **ports), srv)
    write_mlserver_config(MLServerConfig(str(tagger_path), name="ner", parallel_workers=1, **ports), srv)
    assert json.loads((srv / "settings.json").read_text())["parallel_workers"] == 1
    tagger = mlflow.pyfunc.load_model(str(tagger_path))
    pairs = mlflow.pyfunc.load_model(str(pair_path))
    with serve_on_mlserver(srv, http, tmp_path / "mlserver.log") as server:
        # the request of the issue: two texts in, each text's entities out
        status, body = _infer(server, "ner", [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}])
        assert status == 200, body
        entities = _column(body, "entities")
        assert len(entities) == 2 and any(entities)
        assert entities == tagger.predict(TEXTS)
        # params pass through as request parameters
        status, body = _infer(
            server, "ner", [{"name": "text", "shape": [1], "datatype": "BYTES", "data": TEXTS[:1]}], {"min_score": 0.6}
        )
        assert status == 200 and _column(body, "entities") == tagger.predict(TEXTS[:1], params={"min_score": 0.6})
        # metadata names the input the model reads
        with __import__("urllib.request").request.urlopen(f"{server}/v2/models/ner", timeout=10) as response:
            metadata = json.loads(response.read())
        assert [i["name"] for i in metadata["inputs"]] == ["text"]
        # a pair model: two inputs, one value per pair; concurrent one-pair requests merged by MLServer's
        # batching get the answer they get alone (batch invariance)
        rng = random.Random(0)
        requests = [(rng.choice(TEXTS), rng.choice(TEXTS[::-1]) + " x" * rng.randint(0, 9)) for _ in range(24)]

        def one(pair):
            status, body = _infer(
                server,
                "pairs",
                [
                    {"name": "text", "shape": [1], "datatype": "BYTES", "data": [pair[0]]},
                    {"name": "text_pair", "shape": [1], "datatype": "BYTES", "data": [pair[1]]},
                ],
            )
            assert status == 200, body
            return _column(body, "labels")[0]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, requests))
        assert answers == [pairs.predict([list(p)])[0] for p in requests]
        # a missing input is the model's clear refusal (400), not a crash
        status, body = _infer(server, "pairs", [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}])
        assert status == 400 and "text_pair" in json.dumps(body)
        # with MLServer's batching, per-request params would be merged into one set: refused, by name
        pair = [{"name": n, "shape": [1], "datatype": "BYTES", "data": ["a b"]} for n in ("text", "text_pair")]
        status, body = _infer(server, "pairs", pair, {"top_k": 1})
        assert status == 400 and "top_k" in body["error"] and "MLServer's adaptive batching" in body["error"]
        # bad inputs through MLServer's batching: refused by name and row, not a 500
        bad = [{**pair[0], "datatype": "INT64", "data": [3]}, pair[1]]
        status, body = _infer(server, "pairs", bad)
        assert status == 400 and "'text' has datatype INT64" in body["error"], body
        uneven = [pair[0], {**pair[1], "shape": [2], "data": ["a", "b"]}]
        status, body = _infer(server, "pairs", uneven)
        assert status == 400 and "different numbers of rows" in body["error"], body


#: what a user sent (issue: INT64 and FP32 were 500s with a traceback, BYTES [3] a 200 with "[]") and more:
#: (input, what the 400's sentence must say)
BAD_INPUTS = [
    ({"name": "text", "shape": [1], "datatype": "INT64", "data": [3]}, "'text' has datatype INT64"),
    ({"name": "text", "shape": [1], "datatype": "FP32", "data": [3.5]}, "'text' has datatype FP32"),
    ({"name": "text", "shape": [1], "datatype": "BYTES", "data": [3]}, "'text', row 0, holds 3 (a number)"),
    ({"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a b", None]}, "row 1, holds null"),
    ({"name": "texts", "shape": [1], "datatype": "BYTES", "data": ["a b"]}, "did you mean 'text'?"),
    ({"name": "sentence", "shape": [1], "datatype": "BYTES", "data": ["a b"]}, "its input is 'text'."),
    ({"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["a b"], ["c"]]}, 'holds ["a b"] (a list)'),
    ({"name": "text", "shape": [1], "datatype": "BYTES", "data": {"a": 1}}, 'holds {"a": 1} (an object)'),
    # MLServer's own codec fails on it (a ValueError from datetime): a sentence, not its traceback
    (
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"], "parameters": {"content_type": "datetime"}},
        "could not be read as a table of texts",
    ),
]


def test_check_inputs_refuses_what_is_not_a_text_by_input_and_row():
    """The check FlairRuntime.predict runs on each request before MLServer's codecs decode it (no server)."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    from mlserver.errors import InferenceError
    from mlserver.types import RequestInput

    from mlflow_flavor.mlserver import check_inputs

    def refusal(inputs, columns=("text",), merged=False) -> str:
        with pytest.raises(InferenceError) as refused:
            check_inputs([RequestInput(**i) for i in inputs], columns, merged=merged)
        assert refused.value.status_code == 400
        return str(refused.value)

    for request_input, message in BAD_INPUTS[:-1]:
        assert message in refusal([request_input])
    text = {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a b", b"c d"]}  # bytes: as gRPC sends
    check_inputs([RequestInput(**text)], ("text",))
    check_inputs([RequestInput(**{**text, "data": "a b", "shape": [1]})], ("text",))  # one text: one row
    pair = ("text", "text_pair")
    check_inputs([RequestInput(**text), RequestInput(**{**text, "name": "text_pair"})], pair)
    assert "'text' 2 and 'text_pair' 1" in refusal([text, {**text, "name": "text_pair", "data": ["x"]}], pair)
    assert "reads (did you mean 'text_pair'?): its inputs are 'text' and 'text_pair'" in refusal(
        [text, {**text, "name": "textpair"}], pair
    )
    assert "appears twice" in refusal([text, text])
    assert "lacks the input 'text_pair'" in refusal([text], pair)  # a pair model sent one side only
    assert "row 1, is not UTF-8 text" in refusal([{**text, "data": ["a b", b"\xff\xfe"]}])  # gRPC bytes, not UTF-8
    merged = refusal([{**text, "data": ["a", 3]}], merged=True)
    assert "row 1 (rows count across the requests MLServer's adaptive batching merged" in merged


def test_runtime_answers_a_request_its_codecs_cannot_decode_with_400():
    """Whatever MLServer's decoding raises becomes a 400 with a sentence (no server: predict alone)."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    import asyncio

    from mlserver.errors import InferenceError
    from mlserver.settings import ModelSettings
    from mlserver.types import InferenceRequest

    from mlflow_flavor.mlserver import FlairRuntime

    runtime = object.__new__(FlairRuntime)
    runtime._settings = ModelSettings(name="ner", implementation=RUNTIME)
    runtime._columns = ("text",)

    def decode_request(payload, default_codec=None):
        raise ValueError("Invalid isoformat string: 'a'")

    runtime.decode_request = decode_request
    request = InferenceRequest(inputs=[{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}])
    with pytest.raises(InferenceError, match=r"could not be read as a table of texts \(ValueError: Invalid"):
        asyncio.run(runtime.predict(request))
    bad = InferenceRequest(inputs=[{"name": "text", "shape": [1], "datatype": "INT64", "data": [3]}])
    with pytest.raises(InferenceError, match="datatype INT64"):
        asyncio.run(runtime.predict(bad))


@pytest.mark.slow
def test_mlserver_answers_bad_v2_inputs_with_400_and_a_sentence(tiny_tagger, tmp_path):
    """A real `mlserver start`: each bad input of the issue is a 400 whose body is a sentence, no traceback; a
    good request after them is answered as before."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    import mlflow_flavor
    from mlflow_flavor.tools.serving import serve_on_mlserver

    model = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model)
    http = free_port()
    config = MLServerConfig(str(model), name="ner", http_port=http, grpc_port=free_port(), metrics_port=free_port())
    write_mlserver_config(config, tmp_path / "srv")
    wrong = []
    with serve_on_mlserver(tmp_path / "srv", http, tmp_path / "mlserver.log") as server:
        for request_input, message in BAD_INPUTS:
            status, body = _infer(server, "ner", [request_input])
            text = json.dumps(body)
            if status != 400 or message not in body.get("error", "") or "Traceback" in text:
                wrong.append((request_input, status, text[-300:]))
        status, body = _infer(server, "ner", [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}])
    assert not wrong, wrong
    assert status == 200 and len(_column(body, "entities")) == 2


@pytest.mark.slow
def test_readme_mlserver_commands_serve_without_a_folder_name_warning(tiny_tagger, tracking, tmp_path, monkeypatch):
    """The README's commands, as written (a registered model's stage, `--name ner`, `serving/`; ports added for
    the test): MLServer finds the model and says nothing of its name differing from its folder's."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    from conftest import log_and_stage

    from mlflow_flavor.cli import main
    from mlflow_flavor.tools.serving import serve_on_mlserver

    log_and_stage(tiny_tagger)
    monkeypatch.chdir(tmp_path)
    http = free_port()
    ports = ["--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    result = CliRunner().invoke(
        main, ["mlserver-config", "models:/ner/Production", "serving/", "--name", "ner", *ports]
    )
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["serving/ner/model-settings.json", "serving/settings.json"]
    log = tmp_path / "mlserver.log"
    with serve_on_mlserver(tmp_path / "serving", http, log, env={"MLFLOW_TRACKING_URI": tracking}) as server:
        status, body = _infer(server, "ner", [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}])
    assert status == 200 and len(_column(body, "entities")) == 2, body
    served = log.read_text()
    assert "Loaded model 'ner' successfully" in served, served[-2000:]
    assert "is different than model's folder name" not in served, served[-2000:]


@pytest.mark.slow
def test_kserve_manifests_use_only_kserves_fields(tmp_path):
    """examples/kserve against KServe's API types (read from its wheel as data); a misspelt field is caught."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "kserve" / "check_manifests.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    if out.returncode == 3:
        pytest.skip(f"the kserve wheel could not be downloaded: {out.stderr[-300:]}")
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("inferenceservice.yaml", "servingruntime.yaml"):
        shutil.copy(script.parent / name, tmp_path / name)
    broken = tmp_path / "inferenceservice.yaml"
    broken.write_text(broken.read_text().replace("protocolVersion:", "protocolVersions:"))
    out = subprocess.run(
        [sys.executable, str(script), "--directory", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 1 and "protocolVersions: not a field of V1beta1ModelSpec" in out.stdout


@pytest.mark.slow
def test_mlserver_configured_by_environment_as_the_kserve_runtime_does(tiny_tagger, tmp_path):
    """examples/kserve/servingruntime.yaml configures MLServer through MLSERVER_* variables (no settings files):
    the same variables, on a model folder as KServe's storage initializer leaves it."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    from pathlib import Path

    import mlflow
    import yaml

    import mlflow_flavor
    from mlflow_flavor.tools.serving import serve_on_mlserver

    models = tmp_path / "mnt-models"
    mlflow_flavor.save_model(tiny_tagger, models)
    manifest = Path(__file__).resolve().parents[1] / "examples" / "kserve" / "servingruntime.yaml"
    (container,) = yaml.safe_load(manifest.read_text())["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == RUNTIME and container["args"][:2] == ["mlserver", "start"]
    http = free_port()
    env.update(
        MLSERVER_MODEL_NAME="ner",  # KServe fills in {{.Name}}
        MLSERVER_MODEL_URI=str(models),  # KServe's /mnt/models
        MLSERVER_HTTP_PORT=str(http),
        MLSERVER_GRPC_PORT=str(free_port()),
        MLSERVER_METRICS_PORT=str(free_port()),
    )
    with serve_on_mlserver(models, http, tmp_path / "mlserver.log", env=env) as server:
        status, body = _infer(server, "ner", [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}])
    assert status == 200, body
    assert _column(body, "entities") == mlflow.pyfunc.load_model(str(models)).predict(TEXTS)


def test_runtime_tables_one_row_per_text_for_every_answer_shape():
    """What FlairRuntime hands MLServer's PandasCodec: one row per input row, a column per output."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    from mlserver.codecs import PandasCodec

    from mlflow_flavor.mlserver import FlairRuntime, input_columns

    assert input_columns("sequence-tagging") == ("text",)
    assert input_columns("text-pair-regression") == ("text", "text_pair")
    runtime = object.__new__(FlairRuntime)  # the table step alone, no server
    cases = [
        (["entities"], [[{"text": "Paris", "label": "LOC"}], []], ["entities"]),
        (["value"], [0.25, 0.75], ["value"]),
        (["ner", "sentiment"], [{"ner": [], "sentiment": [{"label": "POS"}]}] * 2, ["ner", "sentiment"]),
        (["entities"], [{"entities": []}, {"entities": [{"text": "x"}]}], ["entities"]),  # output=records
    ]
    for outputs, answers, columns in cases:
        runtime._outputs = outputs
        table = runtime._as_table(answers)
        assert list(table.columns) == columns and len(table) == 2
        response = PandasCodec.encode_response("m", table)
        assert [o.shape[0] for o in response.outputs] == [2] * len(columns)
