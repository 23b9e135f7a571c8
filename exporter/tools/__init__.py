"""Tooling on top of the exporter: the benchmark, the int8 recipe report and the built-in demo models. Never
shipped in a logged model."""
