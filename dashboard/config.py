"""Configuration of the dashboard (env prefix ``TRIPWIRE_DASHBOARD_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REFRESH_S = 10
DEFAULT_SQL_MAX_ROWS = 10_000
DEFAULT_SQL_TIMEOUT_S = 30.0


class DashboardSettings(BaseSettings):
    """Where the dashboard reads from and how it acts.

    ``store_url`` falls back to ``TRIPWIRE_CLICKHOUSE_URL`` (it is a secret: a server URL carries
    a password). Trips and resets are signed and published exactly like the on-call CLI, with the
    kill switch's own settings (``TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH``, ``_TOPIC``, ``_BOOTSTRAP``).
    ``auth`` is ``oidc`` (Streamlit sign-in, roles from ``roles_path``) or ``dev`` (no sign-in, only
    on loopback, every action done as ``operator`` with the admin role); unset, ``[auth]`` secrets
    mean ``oidc`` and their absence ``dev`` (see ``tripwire.dashboard.auth``).
    """

    model_config = SettingsConfigDict(
        env_prefix="TRIPWIRE_DASHBOARD_", frozen=True, extra="ignore", populate_by_name=True
    )

    store_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TRIPWIRE_DASHBOARD_STORE_URL", "TRIPWIRE_CLICKHOUSE_URL", "store_url")
    )
    operator: str = Field("dashboard", description="Who acts (and is audited) in development mode, where "
                          "nobody signs in; with sign-in the actor is the signed-in user's email.")
    auth: Literal["oidc", "dev"] | None = Field(
        None, description="Sign-in mode: oidc (Streamlit OIDC sign-in, roles from roles_path) or dev (no sign-in, "
        "loopback only, warning banner); unset: oidc when [auth] secrets exist, else dev.")
    roles_path: Path | None = Field(
        None, description="YAML file mapping emails and groups (an OIDC claim) to viewer, oncall, analyst, admin; "
        "required for sign-in.")
    secrets_path: Path | None = Field(
        None, description="Secrets TOML holding the [auth] section (default: Streamlit's .streamlit/secrets.toml "
        "lookup).")
    refresh_s: int = Field(DEFAULT_REFRESH_S, ge=2, le=3600)
    sql_max_rows: int = Field(DEFAULT_SQL_MAX_ROWS, ge=1, le=1_000_000)
    sql_timeout_s: float = Field(DEFAULT_SQL_TIMEOUT_S, gt=0, le=600)
    publish_timeout_s: float = Field(10.0, gt=0, le=120)
