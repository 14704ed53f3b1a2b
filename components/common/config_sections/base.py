"""What every config section shares: the repository's paths, the error type, the strict model
base, and the rule that no secret is written inline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PIPELINE_CONFIG = REPO_ROOT / "config" / "pipeline_config.yaml"
DEFAULT_DATA_SCHEMA = REPO_ROOT / "config" / "data_schema.yaml"
# profiles: config changes for where a pipeline runs (`mlpipe compile|submit|schedule` use
# `cluster`: data, MLflow and state in the cluster's services, never a repository path)
PROFILES_DIR = REPO_ROOT / "config" / "profiles"


class ConfigError(ValueError):
    """A configuration file is unreadable or does not match the model."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def only_default(default: Any):
    """A validator that accepts only `default`: the key exists, its feature does not yet."""

    def check(value: Any) -> Any:
        if value != default:
            raise ValueError(f"value {value!r} is not supported yet (only {default!r} is)")
        return value

    return check


# Names that mark a credential: such values come from the environment or a mounted Secret file,
# never from a config file (which is committed, logged as MLflow params and shown in KFP).
_SECRET_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "signature",
    "sig",
    "credential",
    "authorization",
    "cookie",
    "private_key",
)


def looks_secret(name: str) -> bool:
    name = name.lower().replace("-", "_")
    return any(
        part == name or name.endswith(f"_{part}") or name.startswith(f"{part}_")
        for part in _SECRET_NAMES
    ) or name in ("key", "x_api_key")


def check_no_inline_secret(url: str) -> None:
    """Reject a URL that carries a password or a credential-like query parameter."""
    from urllib.parse import parse_qsl, urlsplit

    if "://" not in url:
        return
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(
            "the URL holds a password: put it in an environment variable or a mounted Secret "
            "file (sql.password_env / sql.password_file, api.auth_env), never in the config"
        )
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if looks_secret(name):
            raise ValueError(
                f"the URL's query parameter {name!r} looks like a credential: pass it through "
                "the environment (api.auth_env) instead"
            )
