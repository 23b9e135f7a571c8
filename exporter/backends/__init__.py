"""One module per accelerated backend, each with the same small surface.

``export_encoder(embeddings, settings, directory, config) -> dict`` writes the backend's files into
``directory`` and returns ``{"files": [...], ...details}``; the encoder class (``OrtEncoder``,
``TorchScriptEncoder``) is an :data:`exporter.embeddings.EncoderFn` built from the bundle on load.
"""

from __future__ import annotations

__all__: list[str] = []
