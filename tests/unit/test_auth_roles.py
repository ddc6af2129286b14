"""Role mapping (email, group claim, precedence, unknown users), the role check of every action,
and the development-mode address rule and mode resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.dashboard.actions import Action, Actor
from tripwire.dashboard.auth import AuthConfigError, AuthMode, check_dev_address, is_loopback, resolve_mode
from tripwire.dashboard.errors import NotAuthorizedError
from tripwire.dashboard.roles import Role, RoleMap, RolesConfigError, authorize_role, can, load

pytestmark = pytest.mark.unit

MAP = RoleMap.from_dict({
    "claim": "groups",
    "users": {"Alice@Example.com": "admin", "bob@example.com": "viewer"},
    "groups": {"sre": "oncall", "data": "analyst", "everyone": "viewer"},
})


def test_email_maps_case_insensitively() -> None:
    assert MAP.resolve({"email": "alice@example.com"}) is Role.ADMIN
    assert MAP.resolve({"email": "ALICE@EXAMPLE.COM", "email_verified": True}) is Role.ADMIN


def test_group_claim_maps_and_the_highest_group_wins() -> None:
    assert MAP.resolve({"email": "carol@example.com", "groups": ["sre"]}) is Role.ONCALL
    assert MAP.resolve({"email": "carol@example.com", "groups": ["everyone", "data", "sre"]}) is Role.ANALYST
    assert MAP.resolve({"email": "carol@example.com", "groups": "sre"}) is Role.ONCALL  # a single string


def test_an_explicit_user_entry_wins_over_groups_even_when_lower() -> None:
    assert MAP.resolve({"email": "bob@example.com", "groups": ["data"]}) is Role.VIEWER


def test_unknown_users_get_no_role_unless_a_default_is_configured() -> None:
    assert MAP.resolve({"email": "mallory@example.com", "groups": ["unknown"]}) is None
    assert MAP.resolve({}) is None
    default = RoleMap.from_dict({"default_role": "viewer"})
    assert default.resolve({"email": "mallory@example.com"}) is Role.VIEWER
    assert RoleMap.from_dict({"default_role": "none"}).resolve({"email": "x@example.com"}) is None


def test_an_unverified_email_does_not_match_by_email() -> None:
    assert MAP.resolve({"email": "alice@example.com", "email_verified": False}) is None
    assert MAP.resolve({"email": "alice@example.com", "email_verified": False, "groups": ["sre"]}) is Role.ONCALL


def test_another_claim_can_carry_the_groups() -> None:
    m = RoleMap.from_dict({"claim": "roles", "groups": {"ops": "oncall"}})
    assert m.resolve({"email": "a@b.c", "roles": ["ops"]}) is Role.ONCALL
    assert m.resolve({"email": "a@b.c", "groups": ["ops"]}) is None


@pytest.mark.parametrize("raw, message", [
    ({"users": {"a@b.c": "superuser"}}, "unknown role 'superuser'"),
    ({"groups": ["sre"]}, "expected a mapping of name -> role"),
    ({"user": {}}, "unknown keys ['user']"),
    (["viewer"], "expected a mapping"),
    ({"default_role": "root"}, "unknown role 'root'"),
])
def test_bad_role_files_are_refused(raw: object, message: str) -> None:
    with pytest.raises(RolesConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RoleMap.from_dict(raw)


def test_load_reads_yaml_and_rereads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "roles.yaml"
    path.write_text("users:\n  a@example.com: oncall\n")
    assert load(path).resolve({"email": "a@example.com"}) is Role.ONCALL
    path.write_text("users:\n  a@example.com: analyst\n# changed\n")
    assert load(path).resolve({"email": "a@example.com"}) is Role.ANALYST
    with pytest.raises(RolesConfigError, match="cannot read the roles file"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("users: [unclosed\n")
    with pytest.raises(RolesConfigError, match="cannot read the roles file"):
        load(tmp_path / "bad.yaml")


# (role, actions it may do)
PERMITTED = {
    None: set(),
    "viewer": set(),
    "oncall": {Action.ACK, Action.TRIP, Action.RESET},
    "analyst": {Action.ACK, Action.TRIP, Action.RESET, Action.SQL},
    "admin": {Action.ACK, Action.TRIP, Action.RESET, Action.SQL},
    "superuser": set(),  # not a role: nothing
}


@pytest.mark.parametrize("role", list(PERMITTED))
def test_each_role_may_do_exactly_its_actions(role: str | None) -> None:
    actor = Actor(name="u@example.com", role=role, authenticated=True)
    allowed = set()
    for action in Action:
        try:
            authorize_role(actor, action, {})
            allowed.add(action)
        except NotAuthorizedError as e:
            assert str(e).startswith(f"u@example.com (role {role or 'none'}) may not {action.value}")
        assert can(actor, action) is (action in allowed)
    assert allowed == PERMITTED[role]


@pytest.mark.parametrize("address, ok", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("", False), ("::", False), ("10.0.0.5", False),
    ("192.168.1.10", False), ("dashboard.example.com", False), ("localhost.example.com", False),
])
def test_dev_mode_only_on_loopback(address: str, ok: bool) -> None:
    assert is_loopback(address) is ok
    if ok:
        check_dev_address(address)
    else:
        with pytest.raises(AuthConfigError, match=r"development mode .* may only bind to 127\.0\.0\.1 or localhost"):
            check_dev_address(address)


AUTH = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                 "client_id": "c", "client_secret": "s",
                 "server_metadata_url": "http://127.0.0.1:9000/.well-known/openid-configuration"}}


def test_mode_resolution(tmp_path: Path) -> None:
    roles = tmp_path / "roles.yaml"
    roles.write_text("users:\n  a@example.com: admin\n")
    # no [auth] secrets: development mode, and only on loopback
    assert resolve_mode(None, address="127.0.0.1", secrets={}, roles_path=None) is AuthMode.DEV
    with pytest.raises(AuthConfigError, match=r"may only bind to 127\.0\.0\.1"):
        resolve_mode(None, address="0.0.0.0", secrets={}, roles_path=None)
    with pytest.raises(AuthConfigError, match=r"may only bind to 127\.0\.0\.1"):
        resolve_mode("dev", address="0.0.0.0", secrets=AUTH, roles_path=roles)
    # [auth] secrets: sign-in, which needs a roles file and every key
    assert resolve_mode(None, address="0.0.0.0", secrets=AUTH, roles_path=roles) is AuthMode.OIDC
    with pytest.raises(AuthConfigError, match="needs a roles file"):
        resolve_mode(None, address="0.0.0.0", secrets=AUTH, roles_path=None)
    with pytest.raises(AuthConfigError, match="needs an \\[auth\\] section"):
        resolve_mode("oidc", address="0.0.0.0", secrets={}, roles_path=roles)
    partial = {"auth": {k: v for k, v in AUTH["auth"].items() if k != "client_secret"}}
    with pytest.raises(AuthConfigError, match="missing client_secret"):
        resolve_mode(None, address="0.0.0.0", secrets=partial, roles_path=roles)
    with pytest.raises(RolesConfigError):
        resolve_mode(None, address="0.0.0.0", secrets=AUTH, roles_path=tmp_path / "none.yaml")
