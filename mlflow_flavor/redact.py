"""Keep credentials out of tags, logs and error messages.

Credentials reach flair-mlflow only through the standard places (AWS variables or profiles, MLflow's
``MLFLOW_TRACKING_*`` variables, or a user:password part in a tracking URI). Anything we store or print
passes through :func:`public_uri` (for URIs) or :func:`redact` (for free text such as a wrapped error).
"""

from __future__ import annotations

import os
import re

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
# scheme://<anything up to the last @ of the token>: user info, even with a raw "/" or "@" in a password
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s]*@")
_SECRET_QUERY = re.compile(
    r"((?:[?&]|\b)[\w.-]*(?:token|secret|password|signature|credential|access_?key)[\w.-]*=)[^&\s)\]'\"]+", re.I
)


def public_uri(uri: str | None) -> str | None:
    """``uri`` without user info or secret-looking query parameters, for tags and logs.

    Everything between ``://`` and the last ``@`` goes, so a password holding ``/`` or ``@`` cannot survive.
    """
    if not uri:
        return uri
    text = _USERINFO.sub(lambda m: m.group("scheme"), uri.strip())
    return _SECRET_QUERY.sub(lambda m: m.group(1) + "***", text)


def _profile_secrets() -> list[str]:
    """Secret values of the shared AWS credentials file (profiles), read without contacting any service."""
    import configparser

    path = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except (configparser.Error, OSError):
        return []
    keys = ("aws_secret_access_key", "aws_session_token")
    return [parser.get(section, k) for section in parser.sections() for k in keys if parser.has_option(section, k)]


def redact(text: str) -> str:
    """``text`` with URL user info, secret query values and every known secret value replaced by ``***``.

    Known secrets: the values of :data:`SECRET_ENV_VARS` and of the shared AWS credentials file.
    """
    text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    text = _SECRET_QUERY.sub(lambda m: m.group(1) + "***", text)
    secrets = [os.environ.get(name) for name in SECRET_ENV_VARS] + _profile_secrets()
    for value in sorted({v for v in secrets if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
