"""The bundle's format on disk: the manifest (``bundle.json``, checksums, schema) and the Flair model file read as
data (``model.pt`` without running code). Imports only ``exporter.errors`` and ``exporter.config``."""
