"""How the dashboard signs people in: Streamlit's native OIDC, or a development mode on loopback.

``oidc``: ``st.login`` against the provider of the ``[auth]`` secrets (``redirect_uri``,
``cookie_secret``, ``client_id``, ``client_secret``, ``server_metadata_url``), read from a
secrets file given to the CLI (``--secrets``) or Streamlit's standard ``.streamlit/secrets.toml``
lookup; roles come from the roles file (:mod:`tripwire.dashboard.roles`).

``dev``: no sign-in; every action is done as the configured operator with the admin role, a
warning banner is on every page, and the server refuses to start unless it is bound to a
loopback address (127.0.0.1, ::1, localhost).

With no mode asked for, ``[auth]`` secrets mean ``oidc`` and their absence means ``dev``, so a
server without sign-in can only ever listen on loopback (fail closed).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from tripwire.dashboard.errors import AuthConfigError

REQUIRED_AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
LOCALHOST_NAMES = frozenset({"localhost", "localhost."})


class AuthMode(StrEnum):
    OIDC = "oidc"
    DEV = "dev"


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for everything else, including "" and 0.0.0.0."""
    host = address.strip().strip("[]").lower()
    if host in LOCALHOST_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_dev_address(address: str) -> None:
    """Refuse development mode (no sign-in) on anything but a loopback address."""
    if not is_loopback(address):
        raise AuthConfigError(
            "development mode (no sign-in) may only bind to 127.0.0.1 or localhost, "
            f"not {address or 'all interfaces'!r}: "
            "configure sign-in ([auth] secrets via --secrets or .streamlit/secrets.toml, and --roles) "
            "or bind to 127.0.0.1"
        )


def read_secrets(paths: Iterable[Path]) -> dict[str, Any]:
    """Merge the TOML secrets files that exist, later files winning (Streamlit's own order)."""
    merged: dict[str, Any] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise AuthConfigError(f"cannot read the secrets file {path}: {e}") from e
    return merged


def check_auth_section(secrets: Mapping[str, Any]) -> None:
    """The ``[auth]`` section ``st.login()`` needs (the default provider), with every key set."""
    auth = secrets.get("auth")
    if not isinstance(auth, Mapping):
        raise AuthConfigError("sign-in needs an [auth] section in the secrets file")
    missing = [k for k in REQUIRED_AUTH_KEYS if not auth.get(k)]
    if missing:
        raise AuthConfigError(f"the [auth] secrets are missing {', '.join(missing)}")
    if not str(auth["redirect_uri"]).endswith("/oauth2callback"):
        raise AuthConfigError("[auth] redirect_uri must end with /oauth2callback (http://HOST:PORT/oauth2callback)")


def resolve_mode(
    requested: AuthMode | str | None, *, address: str, secrets: Mapping[str, Any], roles_path: Path | None
) -> AuthMode:
    """The mode to serve in, after every check that must pass before the server starts."""
    mode = AuthMode(requested) if requested else (AuthMode.OIDC if "auth" in secrets else AuthMode.DEV)
    if mode is AuthMode.DEV:
        check_dev_address(address)
        return mode
    check_auth_section(secrets)
    if roles_path is None:
        raise AuthConfigError("sign-in needs a roles file (--roles or TRIPWIRE_DASHBOARD_ROLES_PATH); "
                              "without one nobody would have a role")
    from tripwire.dashboard import roles

    roles.load(roles_path)  # fails now on a bad file, not at the first sign-in
    try:
        import authlib  # noqa: F401
    except ImportError as e:
        from tripwire.core.errors import MissingExtraError

        raise MissingExtraError("Authlib (needed for sign-in)", "dashboard") from e
    return mode
