"""The names of an MLflow model directory of this flavor: one definition each, read by writer and loader alike.

Layout of a model directory::

    MLmodel              MLflow's model file: the pyfunc flavor (loader ``mlflow_flavor``) and ours
    bundle/              the flair-mlflow bundle (``exporter.bundle``), covered by its own manifest
    code/                the runtime packages a loader imports, nothing else (see ``mlflow_flavor.flavor``)
    requirements.txt ... environments, input example: covered by the flavor section's ``files_sha256``
"""

from __future__ import annotations

__all__ = [
    "BUNDLE_SUBPATH",
    "CODE_SUBPATH",
    "FILES_RECORD_KEY",
    "FLAVOR_NAME",
    "LOADER_MODULE",
    "MLMODEL",
]

#: the flavor's section in ``MLmodel``
FLAVOR_NAME = "flair_mlflow"
#: the pyfunc ``loader_module`` written into every ``MLmodel``: models logged by any version load through it
LOADER_MODULE = "mlflow_flavor"
#: where the bundle and the shipped code live in a model directory
BUNDLE_SUBPATH = "bundle"
CODE_SUBPATH = "code"
#: the flavor section's record of every file outside the bundle (MLmodel excluded): {relative path: sha256}
FILES_RECORD_KEY = "files_sha256"
MLMODEL = "MLmodel"
