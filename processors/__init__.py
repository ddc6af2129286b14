"""tripwire.processors: stream processing.

Pure operators (no faust, Kafka or ClickHouse imports) with explicit, serializable state:
:class:`RunAggregator` -> RunSummary, :class:`LatencyWindows` -> WindowStats, and the detectors
-> Alert (deduplicated into incidents). :class:`Pipeline` runs them all in-process; the faust
runtime (``tripwire process``) runs the same stages on Kafka.
"""

from tripwire.processors.admin import TopicError, ensure_topics
from tripwire.processors.config import ProcessorConfig
from tripwire.processors.detect_agent import AgentDetectors
from tripwire.processors.detect_credential import CredentialDetector
from tripwire.processors.detect_run import RunDetectors
from tripwire.processors.errors import FaustRuntimeError, PolicyError, ProcessorError, StateError, StateVersionError
from tripwire.processors.incidents import Incident, IncidentBook, Occurrence
from tripwire.processors.latency import ClosedWindow, LatencyWindows, window_key
from tripwire.processors.pipeline import Pipeline
from tripwire.processors.policy import Policy, default_policy, load_policy, policy_from_dict
from tripwire.processors.run_aggregator import RunAggregator, RunState
from tripwire.processors.sketch import LatencySketch
from tripwire.processors.stages import AgentStage, CredentialStage, Outputs, RunStage, StageResult
from tripwire.processors.state_format import STATE_VERSION

__all__ = [
    "STATE_VERSION",
    "AgentDetectors",
    "AgentStage",
    "ClosedWindow",
    "CredentialDetector",
    "CredentialStage",
    "FaustRuntimeError",
    "Incident",
    "IncidentBook",
    "LatencySketch",
    "LatencyWindows",
    "Occurrence",
    "Outputs",
    "Pipeline",
    "Policy",
    "PolicyError",
    "ProcessorConfig",
    "ProcessorError",
    "RunAggregator",
    "RunDetectors",
    "RunStage",
    "RunState",
    "StageResult",
    "StateError",
    "StateVersionError",
    "TopicError",
    "default_policy",
    "ensure_topics",
    "load_policy",
    "policy_from_dict",
    "window_key",
]
