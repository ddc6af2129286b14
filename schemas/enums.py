"""Enumerations of the contract; each mirrors an Avro enum (values are the Avro symbols)."""

from __future__ import annotations

from enum import StrEnum


class CostSource(StrEnum):
    PROVIDER_REPORTED = "provider_reported"
    PRICE_TABLE = "price_table"
    UNKNOWN = "unknown"


class CallStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    BLOCKED = "blocked"
    DENIED = "denied"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Decision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ESCALATED = "escalated"
    ABORTED = "aborted"
    KILLED = "killed"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class KillSwitchAction(StrEnum):
    DISABLE_AUTONOMY = "disable_autonomy"
    FORCE_APPROVAL = "force_approval"
    FREEZE_TOOL = "freeze_tool"
    THROTTLE = "throttle"
    RESUME = "resume"
