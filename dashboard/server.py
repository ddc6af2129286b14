"""Serving the dashboard: streamlit's server in this process, with the store opened up front.

Opening the store before serving fails fast on a bad URL, and (chdb binding its folder to one
process) makes this process the folder's owner; the pages then reach it through
``data.get_store()``. A host that already owns a store (the embedded demo) calls
``data.set_store`` itself and then ``serve(...)`` without a URL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tripwire.dashboard import auth as auth_mod
from tripwire.dashboard import data

log = logging.getLogger(__name__)

APP = Path(__file__).with_name("app.py")


def flag_options(port: int, address: str) -> dict[str, Any]:
    return {
        "server.port": port,
        "server.address": address,
        "server.headless": True,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "browser.gatherUsageStats": False,
        "client.showErrorDetails": "none",
        "client.toolbarMode": "minimal",
        "global.developmentMode": False,
    }


def serve(
    *,
    store_url: str | None = None,
    port: int = 8501,
    address: str = "127.0.0.1",
    auth: str | None = None,
    secrets: Path | None = None,
    roles: Path | None = None,
) -> None:
    """Check sign-in, open the store (if a URL is given), register it, and run streamlit until interrupted.

    ``auth`` / ``secrets`` / ``roles`` default to the settings (``TRIPWIRE_DASHBOARD_AUTH``,
    ``_SECRETS_PATH``, ``_ROLES_PATH``); see ``tripwire.dashboard.auth`` for the modes. Every
    check runs before anything is served: a bad mode, address, secrets or roles file raises
    ``AuthConfigError``.
    """
    from streamlit import config as st_config
    from streamlit.web import bootstrap

    from tripwire.dashboard import actions
    from tripwire.dashboard import roles as roles_mod

    base = data.settings()
    secrets = secrets or base.secrets_path
    roles = roles or base.roles_path
    if secrets is not None and not secrets.is_file():
        raise auth_mod.AuthConfigError(f"the secrets file {secrets} does not exist")
    options = flag_options(port, address)
    if secrets is not None:
        options["secrets.files"] = [str(secrets)]
    main = str(APP)
    st_config._main_script_path = main
    bootstrap.load_config_options(flag_options=options)
    secret_files = [Path(p) for p in st_config.get_option("secrets.files")]
    mode = auth_mod.resolve_mode(auth or base.auth, address=address, secrets=auth_mod.read_secrets(secret_files),
                                 roles_path=roles)
    update: dict[str, Any] = {"auth": mode.value, "roles_path": roles, "secrets_path": secrets}
    if store_url is not None:
        store = data.open_url(store_url)  # fails before any global state changes
        data.set_settings(base.model_copy(update={**update, "store_url": SecretStr(store_url)}))
        data.set_store(store)
    else:
        data.set_settings(base.model_copy(update=update))
        data.get_store()  # fail now if nothing is registered or configured
    actions.set_authorizer(roles_mod.authorize_role)
    if mode is auth_mod.AuthMode.DEV:
        log.warning("dashboard in development mode: no sign-in, every action as operator=%s", base.operator)
    log.info("dashboard serving address=%s port=%d auth=%s", address, port, mode.value)
    bootstrap.run(main, False, [], options)
