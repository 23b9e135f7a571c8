"""One module per accelerated backend, each with the same small surface.

``export(embeddings, settings, directory, config, progress) -> list[str]`` writes the backend's files
into ``directory`` and returns their names; ``load_encoder(directory, manifest, runtime)`` returns an
:data:`exporter.embeddings.EncoderFn`.
"""

from __future__ import annotations

__all__: list[str] = []
