"""One error boundary at the MLflow edge: each error class reaches a client with the HTTP status class that
says who is at fault (4xx: the request; 5xx: the model or the server)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS, MlflowException
from mlflow.protos import databricks_pb2

import mlflow_flavor
from exporter import errors
from exporter.errors import ConfigError, FlairMlflowError, InputError, MissingDependencyError, UnsupportedModelError
from mlflow_flavor.boundary import error_code, mlflow_errors
from mlflow_flavor.registry import errors as registry_errors
from mlflow_flavor.tools.serving import ServerError

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["Angela Merkel met Tim Cook in Paris ."]
#: the error classes a caller fixes by sending something else; every other class is the model's or server's fault
REQUEST_FAULTS = {InputError, ConfigError, UnsupportedModelError}


def _status_class(cls: type[FlairMlflowError]) -> int:
    return 4 if cls in REQUEST_FAULTS else 5


def _error_classes_in_memory() -> set[type]:
    found, stack = set(), [FlairMlflowError]
    while stack:
        cls = stack.pop()
        if cls.__module__.split(".")[0] in ("exporter", "mlflow_flavor"):
            found.add(cls)
        stack.extend(cls.__subclasses__())
    return found


def _error_class_names_in_source() -> set[str]:
    """Every class defined in exporter/ and mlflow_flavor/ that derives from one of our errors (by name)."""
    classes = []
    for path in [*(REPO / "exporter").rglob("*.py"), *(REPO / "mlflow_flavor").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                classes.append((node.name, bases))
    names = {"FlairMlflowError"}
    while True:
        more = {name for name, bases in classes if bases & names} - names
        if not more:
            return names
        names |= more


#: every error class of both packages (each layer's module of errors imported above) and its MLflow code
ERROR_CODES = {cls: cls.mlflow_code for cls in sorted(_error_classes_in_memory(), key=lambda c: c.__name__)}


def test_every_error_class_has_its_own_code():
    """Each class declares its code in its own body (a new class is placed on purpose, not by inheritance)."""
    mapped = {cls.__name__ for cls in ERROR_CODES}
    public = {getattr(errors, name) for name in errors.__all__}
    public |= {getattr(registry_errors, name) for name in registry_errors.__all__} | {ServerError}
    public |= {getattr(mlflow_flavor, name) for name in mlflow_flavor.__all__ if name.endswith("Error")}
    assert public <= set(ERROR_CODES), public - set(ERROR_CODES)
    assert all("mlflow_code" in vars(cls) for cls in ERROR_CODES), [
        c for c in ERROR_CODES if "mlflow_code" not in vars(c)
    ]
    assert _error_class_names_in_source() <= mapped, _error_class_names_in_source() - mapped


def test_codes_say_who_is_at_fault():
    for cls, code in ERROR_CODES.items():
        assert code in databricks_pb2.ErrorCode.keys(), (cls.__name__, code)
        assert ERROR_CODE_TO_HTTP_STATUS[code] // 100 == _status_class(cls), (cls.__name__, code)
        exception = MlflowException("x", error_code=databricks_pb2.ErrorCode.Value(code))
        assert exception.get_http_status_code() // 100 == _status_class(cls), (cls.__name__, code)


def test_boundary_keeps_message_and_cause_and_lets_other_errors_through():
    class NewInputError(InputError):
        pass

    assert error_code(NewInputError("x")) == "INVALID_PARAMETER_VALUE"  # that of the nearest base class
    with pytest.raises(MlflowException, match="the checksum differs") as raised:
        with mlflow_errors():
            raise errors.ChecksumError("the checksum differs")
    assert raised.value.error_code == "DATA_LOSS"
    assert isinstance(raised.value.__cause__, errors.ChecksumError)
    with pytest.raises(KeyError):
        with mlflow_errors():
            raise KeyError("not ours")


def _instance(cls: type[FlairMlflowError]) -> FlairMlflowError:
    if cls is MissingDependencyError:
        return cls("onnxruntime", purpose="the boundary test")
    return cls(f"a {cls.__name__} raised for the boundary test")


@pytest.fixture()
def model_dir(tiny_bundle, tmp_path) -> Path:
    path = tmp_path / "model"
    mlflow_flavor.save_model(str(tiny_bundle), path)  # the verified bundle as it is: no export
    return path


def test_each_error_class_reaches_a_served_client_with_its_status_class(model_dir, monkeypatch):
    """MLflow's scoring server app (what ``mlflow models serve`` runs) over the flavor's real pyfunc."""
    from mlflow.pyfunc import scoring_server
    from mlflow.pyfunc.scoring_server import _MLFLOW_IS_IN_SERVING_ENVIRONMENT

    monkeypatch.setenv(_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name, "true")  # init() sets it; restored afterwards
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    model = pyfunc._model_impl
    client = TestClient(scoring_server.init(pyfunc))
    ok = client.post("/invocations", json={"inputs": TEXTS})
    assert ok.status_code == 200, ok.text
    # bad input: our own InputError from the pyfunc's input checks, not an injected one
    response = client.post("/invocations", json={"inputs": [1, 2]})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    for cls in ERROR_CODES:
        error = _instance(cls)

        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(model.model, "predict", fail)
        response = client.post("/invocations", json={"inputs": TEXTS})
        body = response.json()
        assert response.status_code // 100 == _status_class(cls), (cls.__name__, response.status_code, body)
        assert body["error_code"] == ERROR_CODES[cls], cls.__name__
        assert str(error) in body["message"]


def test_load_errors_leave_as_the_models_fault_or_the_callers(model_dir, tmp_path):
    with pytest.raises(MlflowException, match="max_texts must be a positive integer") as raised:
        mlflow.pyfunc.load_model(str(model_dir), model_config={"max_texts": 0})
    assert raised.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match="Unknown model_config key") as raised:
        mlflow_flavor.load_model(str(model_dir), model_config={"threads": 4})
    assert raised.value.get_http_status_code() == 400
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    onnx_file = next((tampered / "bundle").rglob("*.onnx"))
    data = bytearray(onnx_file.read_bytes())
    data[-1] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    for load in (mlflow.pyfunc.load_model, mlflow_flavor.load_model):
        with pytest.raises(MlflowException) as raised:
            load(str(tampered))
        assert isinstance(raised.value.__cause__, errors.ChecksumError), load
        assert raised.value.error_code == "DATA_LOSS" and raised.value.get_http_status_code() == 500
