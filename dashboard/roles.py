"""Roles of dashboard users: who may do what, read from a YAML file (issue 11; least privilege,
issue 21).

A role is a set of permissions, not a rung of a ladder, and a user may hold several:

- ``viewer``: the read-only pages (every role can read them);
- ``analyst``: the SQL console;
- ``on-call``: acknowledge alerts, trip and reset kill switches;
- ``admin``: everything the others may.

So an analyst cannot trip or reset a kill switch, and on-call cannot use the SQL console, unless
the user also holds the other role. The file maps signed-in users to roles by email and by groups
(any OIDC claim holding a list of names, ``groups`` by default)::

    version: 2
    claim: groups            # the OIDC claim that lists a user's groups
    default_roles: []        # roles of a signed-in user nothing matches: [] is no access
    users:
      alice@example.com: [admin]
      bob@example.com: [analyst, on-call]
    groups:
      sre: [on-call]
      data-team: [analyst]

Resolution, in order: an explicit ``users`` entry wins (it can give a user less than their
groups); otherwise the union of the roles of the user's matching groups; otherwise
``default_roles``. Emails compare case-insensitively and count only when the provider says
``email_verified: true`` (a provider that lets users set their own e-mail and does not verify it
cannot get them a role by e-mail). Nothing matched and no default: no role, which is refused
everything, including the read-only pages (fail closed).

The issue-11 format (no ``version``, one role per entry, ``default_role``) is still read, with a
logged warning saying how to migrate; its names take their new meaning (an ``analyst`` entry no
longer trips or resets; write ``[analyst, on-call]`` for someone who should).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tripwire.dashboard.actions import Action, Actor
from tripwire.dashboard.errors import NotAuthorizedError, RolesConfigError

log = logging.getLogger(__name__)

DEFAULT_GROUP_CLAIM = "groups"
FORMAT_VERSION = 2
MIGRATE_HINT = (
    "add 'version: 2', write each entry as a list of roles (sre: [on-call], data-team: [analyst]; "
    "someone who should both query and trip: [analyst, on-call]) and rename default_role to default_roles"
)


class Role(StrEnum):
    """One set of permissions (:data:`PERMISSIONS`); a user holds any number of them."""

    VIEWER = "viewer"
    ANALYST = "analyst"
    ONCALL = "on-call"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object, where: str) -> Role:
        key = str(value).strip().lower().replace("_", "-")
        key = "on-call" if key == "oncall" else key
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(r.label for r in cls)
            raise RolesConfigError(f"{where}: unknown role {value!r} (expected one of {names})") from None


# The actions each role allows; an action no role lists is refused to everyone. Every role may
# read the pages (a user with no role sees nothing).
PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset(),
    Role.ANALYST: frozenset({Action.SQL}),
    Role.ONCALL: frozenset({Action.ACK, Action.TRIP, Action.RESET}),
    Role.ADMIN: frozenset({Action.SQL, Action.ACK, Action.TRIP, Action.RESET}),
}
_ORDER = {r: i for i, r in enumerate(Role)}


def label(roles: Iterable[Role]) -> str | None:
    """How a set of roles travels in ``Actor.role`` and the audit: ``analyst,on-call``; None for none."""
    names = sorted(set(roles), key=_ORDER.__getitem__)
    return ",".join(r.label for r in names) or None


def roles_of(actor: Actor) -> frozenset[Role]:
    """The roles ``actor.role`` names (names that are not roles count for nothing)."""
    if not actor.role:
        return frozenset()
    out = set()
    for name in actor.role.split(","):
        try:
            out.add(Role.parse(name, "actor"))
        except RolesConfigError:
            continue
    return frozenset(out)


def can(actor: Actor, action: Action) -> bool:
    """Whether one of ``actor``'s roles allows ``action`` (pages use it to hide buttons; the server uses
    it to refuse)."""
    return any(action in PERMISSIONS[r] for r in roles_of(actor))


def authorize_role(actor: Actor, action: Action, details: Mapping[str, Any]) -> None:
    """The dashboard's authorizer (``actions.set_authorizer``): refuse unless a role allows the action."""
    if not can(actor, action):
        granting = [r.label for r in Role if action in PERMISSIONS[r]]
        needs = f"needs role {' or '.join(granting)}" if granting else "is not allowed from the dashboard"
        raise NotAuthorizedError(f"{actor.name} (role {actor.role or 'none'}) may not {action.value}: it {needs}")


def _verified(claims: Mapping[str, Any]) -> bool:
    """``email_verified`` is true (a boolean, or the string some providers send)."""
    v = claims.get("email_verified")
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


@dataclass(frozen=True, slots=True)
class RoleMap:
    users: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    groups: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    claim: str = DEFAULT_GROUP_CLAIM
    default_roles: frozenset[Role] = frozenset()
    legacy: bool = False

    @classmethod
    def from_dict(cls, raw: object, where: str = "roles") -> RoleMap:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise RolesConfigError(f"{where}: expected a mapping with version/users/groups/claim/default_roles")
        version = raw.get("version")
        if version not in (None, FORMAT_VERSION):
            raise RolesConfigError(f"{where}: unknown version {version!r} (expected {FORMAT_VERSION})")
        legacy = version is None
        default_key = "default_role" if legacy else "default_roles"
        allowed = {"version", "users", "groups", "claim", default_key}
        unknown = set(raw) - allowed
        if unknown:
            hint = " (version 2 spells it default_roles)" if "default_role" in unknown else ""
            raise RolesConfigError(f"{where}: unknown keys {sorted(unknown)} (expected {', '.join(sorted(allowed))})"
                                   f"{hint}")
        if legacy:
            log.warning("roles file in the old one-role-per-entry format where=%s: roles are now sets of "
                        "permissions (an analyst no longer trips or resets kill switches); to migrate, %s",
                        where, MIGRATE_HINT)
        users = _section(raw.get("users"), f"{where}.users")
        groups = _section(raw.get("groups"), f"{where}.groups")
        claim = str(raw.get("claim") or DEFAULT_GROUP_CLAIM)
        default = raw.get(default_key)
        default_roles = (frozenset() if default in (None, "", "none", False, [])
                         else _roles(default, f"{where}.{default_key}"))
        return cls(users={k.lower(): v for k, v in users.items()}, groups=groups, claim=claim,
                   default_roles=default_roles, legacy=legacy)

    def resolve(self, claims: Mapping[str, Any]) -> frozenset[Role]:
        """The roles of a signed-in user from their OIDC claims (``email`` with ``email_verified``, the
        group claim); empty: no access."""
        email = claims.get("email")
        if isinstance(email, str) and email and _verified(claims):
            explicit = self.users.get(email.strip().lower())
            if explicit is not None:
                return explicit
        found = [self.groups[g] for g in _names(claims.get(self.claim)) if g in self.groups]
        if found:
            return frozenset().union(*found)
        return self.default_roles


def _roles(value: object, where: str) -> frozenset[Role]:
    """One role name or a list of them."""
    names = value if isinstance(value, list | tuple) else [value]
    if not names:
        raise RolesConfigError(f"{where}: expected a role or a list of roles, got an empty list")
    return frozenset(Role.parse(v, where) for v in names)


def _section(value: object, where: str) -> dict[str, frozenset[Role]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RolesConfigError(f"{where}: expected a mapping of name -> role")
    return {str(k).strip(): _roles(v, f"{where}.{k}") for k, v in value.items()}


def _names(value: object) -> list[str]:
    """A group claim as a list of names (providers send a list, some a single string)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def load(path: Path) -> RoleMap:
    """Read the roles file (re-read when it changes: cached by path and modification time)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise RolesConfigError(f"cannot read the roles file {path}: {e}") from e
    return _load(str(path), mtime)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: int) -> RoleMap:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise RolesConfigError(f"cannot read the roles file {path}: {e}") from e
    return RoleMap.from_dict(raw, where=path)
