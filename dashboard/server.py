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

from tripwire.dashboard import data
from tripwire.dashboard.config import DashboardSettings

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


def serve(*, store_url: str | None = None, port: int = 8501, address: str = "127.0.0.1") -> None:
    """Open the store (if a URL is given), register it, and run streamlit until interrupted."""
    from streamlit import config as st_config
    from streamlit.web import bootstrap

    if store_url is not None:
        store = data.open_url(store_url)  # fails before any global state changes
        data.set_settings(DashboardSettings(store_url=store_url))
        data.set_store(store)
    else:
        data.get_store()  # fail now if nothing is registered or configured
    main = str(APP)
    st_config._main_script_path = main
    options = flag_options(port, address)
    bootstrap.load_config_options(flag_options=options)
    log.info("dashboard serving address=%s port=%d", address, port)
    bootstrap.run(main, False, [], options)
