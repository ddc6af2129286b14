"""tripwire.schemas: the event contract (Avro schemas, pydantic models, codecs, topics)."""

from tripwire.schemas import topics
from tripwire.schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from tripwire.schemas.codec import AvroCodec, Codec, decode, encode, from_record, to_record
from tripwire.schemas.config import SchemaConfig, make_codec
from tripwire.schemas.dead_letters import dead_letter, dead_letter_id
from tripwire.schemas.enums import CallStatus, CostSource, Decision, KillSwitchAction, Outcome, Risk, Severity
from tripwire.schemas.errors import DecodeError, EncodeError, SchemaError, SchemaRegistryUnavailableError
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
    "ConfluentCodec",
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
    "SchemaConfig",
    "SchemaError",
    "SchemaRegistryUnavailableError",
    "SchemaVersion",
    "Severity",
    "ToolCall",
    "Topics",
    "WindowStats",
    "dead_letter",
    "dead_letter_id",
    "decode",
    "default_catalog",
    "encode",
    "from_record",
    "make_codec",
    "to_record",
    "topic_names",
    "topics",
]


def __getattr__(name: str):  # ConfluentCodec needs the 'registry' extra; import it on first use
    if name == "ConfluentCodec":
        from tripwire.schemas.confluent import ConfluentCodec

        return ConfluentCodec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
