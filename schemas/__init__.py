"""tripwire.schemas: the event contract (Avro schemas, pydantic models, codecs, topics)."""

from tripwire.schemas import topics
from tripwire.schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from tripwire.schemas.codec import AvroCodec, Codec, decode, encode, from_record, to_record
from tripwire.schemas.enums import CallStatus, CostSource, Decision, KillSwitchAction, Outcome, Risk, Severity
from tripwire.schemas.errors import DecodeError, EncodeError, SchemaError
from tripwire.schemas.events import (
    ApprovalDecision,
    Event,
    EventBase,
    ModelCall,
    RunFinished,
    RunStarted,
    ToolCall,
)
from tripwire.schemas.records import Alert, DeadLetter, KillSwitchCommand, RunSummary, WindowStats
from tripwire.schemas.topics import Topics, topic_names

__all__ = [
    "Alert",
    "ApprovalDecision",
    "AvroCodec",
    "CallStatus",
    "Codec",
    "CostSource",
    "DeadLetter",
    "Decision",
    "DecodeError",
    "EncodeError",
    "Event",
    "EventBase",
    "KillSwitchAction",
    "KillSwitchCommand",
    "ModelCall",
    "Outcome",
    "Risk",
    "RunFinished",
    "RunStarted",
    "RunSummary",
    "SchemaCatalog",
    "SchemaError",
    "SchemaVersion",
    "Severity",
    "ToolCall",
    "Topics",
    "WindowStats",
    "decode",
    "default_catalog",
    "encode",
    "from_record",
    "to_record",
    "topic_names",
    "topics",
]
