"""Check this folder's KServe manifests against KServe's own API types (no cluster needed).

The ``kserve`` Python package carries its custom resources' OpenAPI models (``kserve/models/*.py``: each class's
``openapi_types`` and ``attribute_map``). This script downloads the wheel (``pip download --no-deps``, nothing is
installed or imported from it), reads those tables as data and walks each manifest: every field must be one of
its type's fields, at every level KServe defines (Kubernetes' own types, such as a container, are not in it).

    python examples/kserve/check_manifests.py [--kserve-version 0.21.0] [--directory DIR]

Exit status: 0 every field known, 1 a field unknown (each printed), 3 the wheel could not be downloaded.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MANIFESTS = {"inferenceservice.yaml": "V1beta1InferenceService", "servingruntime.yaml": "V1alpha1ServingRuntime"}
SCALARS = ("str", "int", "bool", "float", "object", "datetime")


def read_models(wheel: Path) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """``class -> (field -> type, json name -> field)`` for every model class in the wheel, read as data."""
    models = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith("kserve/models/") or not name.endswith(".py"):
                continue
            for node in ast.parse(archive.read(name)).body:
                if not isinstance(node, ast.ClassDef):
                    continue
                tables = {
                    stmt.targets[0].id: ast.literal_eval(stmt.value)
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign)
                    and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id in ("openapi_types", "attribute_map")
                }
                if len(tables) == 2:
                    by_json = {json_name: field for field, json_name in tables["attribute_map"].items()}
                    models[node.name] = (tables["openapi_types"], by_json)
    return models


def check(value, kind: str, path: str, models, problems: list[str]) -> None:
    if kind.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list ({kind})")
            return
        for i, item in enumerate(value):
            check(item, kind[5:-1], f"{path}[{i}]", models, problems)
        return
    if kind.startswith("dict(") or kind in SCALARS or kind not in models:
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({kind})")
        return
    types, by_json = models[kind]
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {kind}; its fields: {', '.join(sorted(by_json))}")
        else:
            check(item, types[by_json[key]], f"{path}.{key}", models, problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kserve-version", default="0.21.0")
    parser.add_argument("--directory", type=Path, default=HERE, help="Where the manifests are (default: here).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"kserve=={args.kserve_version}"]
        if subprocess.run([*download, "-d", work]).returncode != 0:
            print(f"Could not download kserve=={args.kserve_version} (no package index?).", file=sys.stderr)
            return 3
        models = read_models(next(Path(work).glob("kserve-*.whl")))
    problems: list[str] = []
    for manifest, kind in MANIFESTS.items():
        check(yaml.safe_load((args.directory / manifest).read_text()), kind, manifest, models, problems)
    print("\n".join(problems) or f"{', '.join(MANIFESTS)}: every field is KServe {args.kserve_version}'s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
