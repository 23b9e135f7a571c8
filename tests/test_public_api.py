"""The public names are the ones we mean, and importing the packages stays light."""

from __future__ import annotations

import subprocess
import sys

import exporter
import mlflow_flavor
from exporter.config import Backend


def test_exporter_public_names():
    assert sorted(exporter.__all__) == sorted(
        [
            "Backend",
            "BundleError",
            "ChecksumError",
            "ConfigError",
            "ExportConfig",
            "ExportError",
            "FlairMlflowError",
            "InputError",
            "MissingDependencyError",
            "OnnxOptions",
            "ParityConfig",
            "ParityError",
            "ProviderError",
            "RuntimeOptions",
            "TorchScriptOptions",
            "UnsafeModelFileError",
            "UnsupportedModelError",
            "load_bundle",
            "save_bundle",
        ]
    )
    for name in exporter.__all__:
        assert getattr(exporter, name) is not None


def test_flavor_public_names_follow_mlflow_contract():
    """The flavor's functions, the registry's, and one error hierarchy for users (every layer's errors)."""
    assert sorted(mlflow_flavor.__all__) == sorted(
        [
            "BundleError",
            "ChecksumError",
            "ConfigError",
            "EvaluationConfig",
            "ExportError",
            "FLAVOR_NAME",
            "FlairMlflowError",
            "InputError",
            "MissingDependencyError",
            "ParityError",
            "PromotionConfig",
            "PromotionError",
            "PromotionResult",
            "ProviderError",
            "QualityGateError",
            "ServerError",
            "SourceVerificationError",
            "UnsafeModelFileError",
            "UnsupportedModelError",
            "evaluate_model",
            "fetch_model",
            "get_default_pip_requirements",
            "load_model",
            "log_model",
            "promote",
            "register_model_version",
            "save_model",
        ]
    )
    assert mlflow_flavor.FLAVOR_NAME == "flair_mlflow"
    assert callable(mlflow_flavor._load_pyfunc)
    for name in mlflow_flavor.__all__:
        assert getattr(mlflow_flavor, name) is not None
    assert mlflow_flavor.QualityGateError.__module__ == "mlflow_flavor.registry.errors"
    assert issubclass(mlflow_flavor.ServerError, mlflow_flavor.FlairMlflowError)


def test_importing_does_not_pull_heavy_libraries():
    code = "import sys, exporter, mlflow_flavor, mlflow_flavor.cli; print(sorted(m for m in ('torch','flair','onnxruntime','mlflow','onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_error_hierarchy():
    for name in (
        "ConfigError",
        "UnsupportedModelError",
        "ExportError",
        "ParityError",
        "BundleError",
        "ProviderError",
        "InputError",
        "MissingDependencyError",
    ):
        assert issubclass(getattr(exporter, name), exporter.FlairMlflowError)
    assert issubclass(exporter.ChecksumError, exporter.BundleError)
    from mlflow_flavor.registry.errors import PromotionError, QualityGateError

    assert issubclass(QualityGateError, PromotionError)
    error = exporter.MissingDependencyError("onnxruntime-gpu", extra="gpu", purpose="CUDA")
    # flair-mlflow is not on PyPI: 'pip install flair-mlflow[gpu]' fails outside a checkout; the extra's own
    # requirements install anywhere, the checkout's form is given beside them
    assert "pip install 'onnxruntime-gpu>=1.18'" in str(error)
    assert "pip install -e '.[gpu]'" in str(error)
    assert "pip install 'flair-mlflow[" not in str(error)


def test_config_validation_messages():
    import pytest

    from exporter import ConfigError, ExportConfig, OnnxOptions, ParityConfig, RuntimeOptions

    with pytest.raises(
        ConfigError, match="Unknown backend 'tensorrt'; choose one of: torch, onnx, torchscript, flair-onnx"
    ):
        ExportConfig(backend="tensorrt")
    with pytest.raises(ConfigError, match="opset must be an integer between 14 and 21"):
        OnnxOptions(opset=9)
    with pytest.raises(ConfigError, match="min_tag_agreement must lie in"):
        ParityConfig(min_tag_agreement=1.5)
    with pytest.raises(ConfigError, match="providers must be a non-empty list"):
        RuntimeOptions(providers=())
    with pytest.raises(ConfigError, match="graph_optimization_level must be one of"):
        RuntimeOptions(graph_optimization_level="max")
    with pytest.raises(ConfigError, match="parity_sentences must be a list of strings"):
        ExportConfig(parity_sentences="one sentence")
    options = RuntimeOptions().updated({"providers": "CUDAExecutionProvider", "intra_op_num_threads": 2})
    assert options.providers == ("CUDAExecutionProvider",) and options.intra_op_num_threads == 2
    assert RuntimeOptions.from_dict(options.to_dict()) == options


def test_every_backend_is_one_module_with_the_same_surface():
    """One table keyed by Backend; each module exports and loads with the same signatures and declares the same
    constants (issue 14): adding a backend is one module and one entry."""
    import inspect

    from exporter.backends import MODULES, SURFACE, backend_module

    assert set(MODULES) == set(Backend)
    signatures = {}
    for backend in Backend:
        module = backend_module(backend)
        assert module.__name__ == MODULES[backend]
        signatures[backend] = tuple(
            tuple(inspect.signature(getattr(module, name)).parameters) for name in ("export", "load")
        )
        assert module.SECTION is None or isinstance(module.SECTION, str)
        assert isinstance(module.MODEL_PICKLE_ALWAYS, bool) and isinstance(module.PICKLE_REASON, str)
        assert isinstance(module.DATA_EMBEDDINGS, tuple)
        assert set(SURFACE) <= set(module.__all__) and all(hasattr(module, name) for name in module.__all__)
    assert set(signatures.values()) == {
        (("model", "directory", "config"), ("directory", "manifest", "runtime", "state", "model_cls"))
    }


def _python_files(*packages):
    from pathlib import Path

    for package in packages:
        yield from Path(package.__file__).parent.rglob("*.py")


def test_no_module_imports_another_modules_private_names():
    import ast

    mlflow_contract = {"_load_pyfunc"}  # the pyfunc loader MLflow looks up on the flavor's package
    offenders = []
    for path in _python_files(exporter, mlflow_flavor):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("exporter", "mlflow_flavor")):
                offenders += [
                    f"{path.name}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and a.name not in mlflow_contract
                ]
    assert offenders == []


def test_bundle_module_has_no_branch_on_the_backend():
    """exporter/bundle dispatches through exporter.backends: no comparison mentions a backend."""
    import ast
    from pathlib import Path

    folder = Path(exporter.__file__).parent / "bundle"
    source = "\n".join(path.read_text() for path in sorted(folder.glob("*.py")))
    comparisons = [
        ast.get_source_segment(source, node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Compare, ast.Match))
    ]
    assert comparisons and not [c for c in comparisons if "backend" in c.lower()]
