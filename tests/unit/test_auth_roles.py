"""Role mapping (email, group claim, precedence, unknown users), the role check of every action,
and the development-mode address rule and mode resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.dashboard.actions import Action, Actor
from tripwire.dashboard.auth import AuthConfigError, AuthMode, check_dev_address, is_loopback, resolve_mode
from tripwire.dashboard.errors import NotAuthorizedError
from tripwire.dashboard.roles import Role, RoleMap, RolesConfigError, authorize_role, can, label, load

pytestmark = pytest.mark.unit

V, A, OC, AD = Role.VIEWER, Role.ANALYST, Role.ONCALL, Role.ADMIN
MAP = RoleMap.from_dict({
    "version": 2,
    "claim": "groups",
    "users": {"Alice@Example.com": ["admin"], "bob@example.com": ["viewer"], "dee@example.com": ["analyst", "on-call"]},
    "groups": {"sre": ["on-call"], "data": ["analyst"], "everyone": "viewer"},
})


def verified(email: str, **claims: object) -> dict:
    return {"email": email, "email_verified": True, **claims}


def test_email_maps_case_insensitively() -> None:
    assert MAP.resolve(verified("alice@example.com")) == {AD}
    assert MAP.resolve(verified("ALICE@EXAMPLE.COM")) == {AD}
    assert MAP.resolve({"email": "alice@example.com", "email_verified": "true"}) == {AD}  # a provider's string


def test_group_claims_map_and_a_user_holds_the_roles_of_every_group() -> None:
    assert MAP.resolve(verified("carol@example.com", groups=["sre"])) == {OC}
    assert MAP.resolve(verified("carol@example.com", groups=["everyone", "data", "sre"])) == {V, A, OC}
    assert MAP.resolve(verified("carol@example.com", groups="sre")) == {OC}  # a single string
    assert MAP.resolve(verified("dee@example.com")) == {A, OC}  # several roles on one entry


def test_an_explicit_user_entry_wins_over_groups_even_when_lower() -> None:
    assert MAP.resolve(verified("bob@example.com", groups=["data"])) == {V}


def test_unknown_users_get_no_role_unless_a_default_is_configured() -> None:
    assert MAP.resolve(verified("mallory@example.com", groups=["unknown"])) == frozenset()
    assert MAP.resolve({}) == frozenset()
    default = RoleMap.from_dict({"version": 2, "default_roles": ["viewer"]})
    assert default.resolve(verified("mallory@example.com")) == {V}
    assert RoleMap.from_dict({"version": 2, "default_roles": []}).resolve(verified("x@example.com")) == frozenset()


def test_an_email_counts_only_when_the_provider_says_it_is_verified() -> None:
    """Issue 21, finding 4: an e-mail was trusted unless ``email_verified`` was explicitly false."""
    for claims in ({"email": "alice@example.com"}, {"email": "alice@example.com", "email_verified": False},
                   {"email": "alice@example.com", "email_verified": None},
                   {"email": "alice@example.com", "email_verified": "false"},
                   {"email": "alice@example.com", "email_verified": 1}):
        assert MAP.resolve(claims) == frozenset(), claims
    # groups do not depend on the e-mail
    assert MAP.resolve({"email": "alice@example.com", "email_verified": False, "groups": ["sre"]}) == {OC}


def test_another_claim_can_carry_the_groups() -> None:
    m = RoleMap.from_dict({"version": 2, "claim": "roles", "groups": {"ops": ["on-call"]}})
    assert m.resolve(verified("a@b.c", roles=["ops"])) == {OC}
    assert m.resolve(verified("a@b.c", groups=["ops"])) == frozenset()


def test_the_old_ladder_format_is_read_with_the_new_meanings_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="tripwire.dashboard.roles"):
        old = RoleMap.from_dict({"default_role": "viewer", "users": {"a@example.com": "analyst"},
                                 "groups": {"sre": "oncall"}})
    assert old.legacy and old.default_roles == {V}
    assert old.resolve(verified("a@example.com")) == {A}  # no longer on-call too
    assert old.resolve(verified("b@example.com", groups=["sre"])) == {OC}
    assert [r.getMessage() for r in caplog.records] == [
        "roles file in the old one-role-per-entry format where=roles: roles are now sets of permissions (an analyst "
        "no longer trips or resets kill switches); to migrate, add 'version: 2', write each entry as a list of roles "
        "(sre: [on-call], data-team: [analyst]; someone who should both query and trip: [analyst, on-call]) and "
        "rename default_role to default_roles"]
    assert not RoleMap.from_dict({"version": 2}).legacy


@pytest.mark.parametrize("raw, message", [
    ({"users": {"a@b.c": "superuser"}}, "unknown role 'superuser'"),
    ({"version": 2, "users": {"a@b.c": ["analyst", "root"]}}, "unknown role 'root'"),
    ({"version": 2, "users": {"a@b.c": []}}, "got an empty list"),
    ({"groups": ["sre"]}, "expected a mapping of name -> role"),
    ({"user": {}}, "unknown keys ['user']"),
    (["viewer"], "expected a mapping"),
    ({"default_role": "root"}, "unknown role 'root'"),
    ({"version": 2, "default_role": "viewer"}, "version 2 spells it default_roles"),
    ({"version": 3}, "unknown version 3"),
])
def test_bad_role_files_are_refused(raw: object, message: str) -> None:
    with pytest.raises(RolesConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RoleMap.from_dict(raw)


def test_load_reads_yaml_and_rereads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "roles.yaml"
    path.write_text("version: 2\nusers:\n  a@example.com: [on-call]\n")
    assert load(path).resolve(verified("a@example.com")) == {OC}
    path.write_text("version: 2\nusers:\n  a@example.com: [analyst]\n# changed\n")
    assert load(path).resolve(verified("a@example.com")) == {A}
    with pytest.raises(RolesConfigError, match="cannot read the roles file"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("users: [unclosed\n")
    with pytest.raises(RolesConfigError, match="cannot read the roles file"):
        load(tmp_path / "bad.yaml")


def test_the_shipped_roles_file_is_the_new_format() -> None:
    shipped = load(Path(__file__).resolve().parents[2] / "deploy" / "dashboard" / "roles.yaml")
    assert not shipped.legacy
    assert shipped.resolve(verified("admin@example.com")) == {AD}
    assert shipped.resolve(verified("x@example.com", groups=["sre"])) == {OC}
    assert shipped.resolve(verified("x@example.com", groups=["data-team"])) == {A}


# (the roles an actor holds, actions they may do)
PERMITTED = {
    None: set(),
    "viewer": set(),
    "on-call": {Action.ACK, Action.TRIP, Action.RESET},
    "oncall": {Action.ACK, Action.TRIP, Action.RESET},  # the old spelling
    "analyst": {Action.SQL},
    "admin": {Action.ACK, Action.TRIP, Action.RESET, Action.SQL},
    "analyst,on-call": {Action.ACK, Action.TRIP, Action.RESET, Action.SQL},
    "viewer,analyst": {Action.SQL},
    "superuser": set(),  # not a role: nothing
    "superuser,analyst": {Action.SQL},
}


@pytest.mark.parametrize("role", list(PERMITTED))
def test_each_role_may_do_exactly_its_actions(role: str | None) -> None:
    """Issue 21, finding 4: an analyst could trip and reset (roles were a ladder)."""
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


def test_the_refusal_names_the_roles_that_would_allow_it() -> None:
    with pytest.raises(NotAuthorizedError) as e:
        authorize_role(Actor("a@example.com", role="analyst"), Action.TRIP, {})
    assert str(e.value) == "a@example.com (role analyst) may not killswitch.trip: it needs role on-call or admin"
    with pytest.raises(NotAuthorizedError) as e:
        authorize_role(Actor("o@example.com", role="on-call"), Action.SQL, {})
    assert str(e.value) == "o@example.com (role on-call) may not sql.query: it needs role analyst or admin"
    assert label([Role.ONCALL, Role.ANALYST, Role.ANALYST]) == "analyst,on-call" and label([]) is None


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
    roles.write_text("version: 2\nusers:\n  a@example.com: [admin]\n")
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
