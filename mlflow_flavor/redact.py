"""Keep credentials out of tags, logs and error messages.

Credentials reach flair-mlflow only through the standard places (AWS variables or profiles, MLflow's
``MLFLOW_TRACKING_*`` variables, or a user:password part in a tracking URI). Anything we store or print
passes through :func:`public_uri` (for URIs) or :func:`redact` (for free text such as a wrapped error).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SECRET_ENV_VARS", "public_uri", "redact"]

SECRET_ENV_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(
    r"([?&](?:[^=&\s]*(?:token|secret|password|signature|credential|key)[^=&\s]*)=)[^&\s]+", re.I
)


def public_uri(uri: str | None) -> str | None:
    """``uri`` without user, password or secret-looking query parameters (for tags and logs)."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(p for p in parts.query.split("&") if p and not _SECRET_QUERY.match("?" + p) and "=" in p)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with every known secret value, URL user info and secret query value replaced by ``***``."""
    text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    text = _SECRET_QUERY.sub(lambda m: m.group(1) + "***", text)
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text
