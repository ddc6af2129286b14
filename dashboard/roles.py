"""Roles of dashboard users: who may do what, read from a YAML file (issue 11).

Four roles, each including the one before it:

- ``viewer``: the read-only pages;
- ``oncall``: + acknowledge alerts, trip and reset kill switches;
- ``analyst``: + the SQL console;
- ``admin``: everything.

The file maps signed-in users to roles by email and by groups (any OIDC claim holding a list
of names, ``groups`` by default)::

    claim: groups            # the OIDC claim that lists a user's groups
    default_role: none       # role of a signed-in user nothing matches: none (no access) or a role
    users:
      alice@example.com: admin
    groups:
      sre: oncall
      data-team: analyst

Resolution, in order: an explicit ``users`` entry wins (it can lower a user below their
groups' role); otherwise the highest role among the user's matching groups; otherwise
``default_role``. Emails compare case-insensitively and count only when the provider did not
say ``email_verified: false``. Nothing matched and no default: no role, which is refused
everything, including the read-only pages (fail closed).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from tripwire.dashboard.actions import Action, Actor
from tripwire.dashboard.errors import NotAuthorizedError, RolesConfigError

DEFAULT_GROUP_CLAIM = "groups"


class Role(IntEnum):
    """Ordered: a role may do everything the roles below it may."""

    VIEWER = 1
    ONCALL = 2
    ANALYST = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: object, where: str) -> Role:
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise RolesConfigError(f"{where}: unknown role {value!r} (expected one of {names})") from None


# The least role each action needs; an action not listed here is refused to everyone.
REQUIRED: Mapping[Action, Role] = {
    Action.ACK: Role.ONCALL,
    Action.TRIP: Role.ONCALL,
    Action.RESET: Role.ONCALL,
    Action.SQL: Role.ANALYST,
}


def role_of(actor: Actor) -> Role | None:
    if actor.role is None:
        return None
    try:
        return Role[actor.role.upper()]
    except KeyError:
        return None


def can(actor: Actor, action: Action) -> bool:
    """Whether ``actor``'s role allows ``action`` (pages use it to hide buttons; the server uses it to refuse)."""
    role = role_of(actor)
    need = REQUIRED.get(action)
    return role is not None and need is not None and role >= need


def authorize_role(actor: Actor, action: Action, details: Mapping[str, Any]) -> None:
    """The dashboard's authorizer (``actions.set_authorizer``): refuse unless the role allows the action."""
    if not can(actor, action):
        need = REQUIRED.get(action)
        needs = f"needs role {need.label} or higher" if need else "is not allowed from the dashboard"
        raise NotAuthorizedError(f"{actor.name} (role {actor.role or 'none'}) may not {action.value}: it {needs}")


@dataclass(frozen=True, slots=True)
class RoleMap:
    users: Mapping[str, Role] = field(default_factory=dict)
    groups: Mapping[str, Role] = field(default_factory=dict)
    claim: str = DEFAULT_GROUP_CLAIM
    default_role: Role | None = None

    @classmethod
    def from_dict(cls, raw: object, where: str = "roles") -> RoleMap:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise RolesConfigError(f"{where}: expected a mapping with users/groups/claim/default_role")
        unknown = set(raw) - {"users", "groups", "claim", "default_role"}
        if unknown:
            raise RolesConfigError(f"{where}: unknown keys {sorted(unknown)} (expected users, groups, claim, "
                                   "default_role)")
        users = _section(raw.get("users"), f"{where}.users")
        groups = _section(raw.get("groups"), f"{where}.groups")
        claim = str(raw.get("claim") or DEFAULT_GROUP_CLAIM)
        default = raw.get("default_role")
        default_role = None if default in (None, "", "none", False) else Role.parse(default, f"{where}.default_role")
        return cls(users={k.lower(): v for k, v in users.items()}, groups=groups, claim=claim,
                   default_role=default_role)

    def resolve(self, claims: Mapping[str, Any]) -> Role | None:
        """The role of a signed-in user from their OIDC claims (``email``, the group claim); None: no access."""
        email = claims.get("email")
        if isinstance(email, str) and email and claims.get("email_verified") is not False:
            explicit = self.users.get(email.strip().lower())
            if explicit is not None:
                return explicit
        found = [self.groups[g] for g in _names(claims.get(self.claim)) if g in self.groups]
        if found:
            return max(found)
        return self.default_role


def _section(value: object, where: str) -> dict[str, Role]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RolesConfigError(f"{where}: expected a mapping of name -> role")
    return {str(k).strip(): Role.parse(v, f"{where}.{k}") for k, v in value.items()}


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
