"""The signed-in user on every script run: the sign-in page, the dev banner, the acting identity.

``gate()`` runs at the top of ``app.py`` before any page: in ``oidc`` mode a visitor who is not
signed in gets only the sign-in page, and a signed-in user without a role only a refusal; in
``dev`` mode every page carries a warning banner (and the page refuses to render if streamlit
is somehow bound off loopback). ``current_actor()`` is the identity every action is checked and
audited with: the email from the provider's ID token (``st.user``, held in streamlit's signed
cookie, never taken from the browser's widgets) and the role the roles file gives it.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from tripwire.dashboard import data, roles
from tripwire.dashboard.actions import Actor
from tripwire.dashboard.auth import AuthMode, is_loopback

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"


def mode() -> AuthMode:
    """The configured mode; unset (pages hosted without ``serve``): ``oidc`` if ``[auth]`` secrets exist."""
    configured = data.settings().auth
    if configured:
        return AuthMode(configured)
    from streamlit.auth_util import get_secrets_auth_section

    return AuthMode.OIDC if get_secrets_auth_section() else AuthMode.DEV


def _claims() -> dict[str, Any]:
    try:
        return dict(st.user.to_dict())
    except Exception:  # no session context (a bare script): nobody is signed in
        return {}


def current_actor() -> Actor:
    """Who is acting now: the signed-in user with their role, or in dev mode the operator as admin."""
    if mode() is AuthMode.DEV:
        return Actor(name=data.settings().operator, role=roles.Role.ADMIN.label, authenticated=False)
    claims = _claims()
    if not claims.get("is_logged_in"):
        return Actor(name=ANONYMOUS)
    name = str(claims.get("email") or claims.get("sub") or ANONYMOUS)
    path = data.settings().roles_path
    held = roles.load(path).resolve(claims) if path is not None else frozenset()
    return Actor(name=name, role=roles.label(held), authenticated=True)


def _sign_in_page() -> None:
    st.title("tripwire")
    st.subheader("Sign in to continue")
    st.caption("The dashboard shows agent telemetry and controls kill switches; it needs a signed-in user.")
    st.button("Sign in", type="primary", key="signin", on_click=st.login)


def _dev_banner() -> None:
    st.warning(
        f"**Development mode: no sign-in.** Everyone who can reach this page acts as "
        f"`{data.settings().operator}` with every permission. Only served on this machine (127.0.0.1).",
        icon=":material/warning:",
    )


def gate() -> Actor:
    """Stop the run unless someone may see the dashboard; return who it is."""
    if mode() is AuthMode.DEV:
        address = str(st.get_option("server.address") or "")
        if not is_loopback(address):
            st.error("Development mode (no sign-in) is refused: this server is not bound to 127.0.0.1.")
            st.stop()
        _dev_banner()
        return current_actor()
    actor = current_actor()
    if not actor.authenticated:
        _sign_in_page()
        st.stop()
    if actor.role is None:
        log.warning("signed-in user without a role actor=%s", actor.name)
        st.title("tripwire")
        st.error(f"Signed in as {actor.name}, but no role is granted to you. Ask an admin to add you to the "
                 "dashboard's roles file.")
        st.button("Sign out", key="signout", on_click=st.logout)
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{actor.name}** ({actor.role})")
        st.button("Sign out", key="signout", on_click=st.logout)
    return actor
