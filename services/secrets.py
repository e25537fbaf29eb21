"""The JWT secret: ``TALK_JWT_SECRET``, or (for ``talk up`` without one) a generated secret
kept under the data directory so tokens minted by ``talk token`` stay valid across runs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from services.settings import Settings

SECRET_FILE = "jwt_secret"


def generated_secret(data_dir: str | Path, *, create: bool) -> str | None:
    path = Path(data_dir) / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Created readable by its owner only, never for a moment by anyone else.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def jwt_secret_for_cli(settings: Settings, data_dir: str | Path) -> str:
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        return settings.jwt_secret.get_secret_value()
    value = generated_secret(data_dir, create=False)
    if value is None:
        raise SystemExit(
            f"TALK_JWT_SECRET is not set and {Path(data_dir) / SECRET_FILE} does not exist "
            "(run `talk up` once, or set TALK_JWT_SECRET)"
        )
    return value
