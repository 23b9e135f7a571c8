"""Bundles: ``load`` verifies and reads one (all a logged model needs), ``save`` writes one through a backend and
the parity gate. Import the half you need: this package imports neither, so that loading never pulls in
``exporter.quality``."""
