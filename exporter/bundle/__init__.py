"""Bundles: ``load`` verifies and reads one (all a logged model needs), ``save`` writes one through a backend and
the parity gate. Import the half you need: this package imports neither, so that loading never pulls in
``exporter.quality``."""

from exporter.packaging import extend_package_path

# a logged model's code/ holds bundle/load only: where that copy was imported first, save comes from the install
__path__ = extend_package_path(__path__, __name__)
