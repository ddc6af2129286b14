"""tripwire.producers: the agent SDK (tracing API, cost, redaction, budgets, loss-free delivery)."""

from tripwire.producers._runtime import use_clock
from tripwire.producers.budget import BudgetLimits, RunBudget
from tripwire.producers.config import (
    DeliverySettings,
    KafkaProducerSettings,
    TracerConfig,
    build_config,
    load_config,
)
from tripwire.producers.cost import CostCalculator, CostResult, PriceOverrides, TokenUsage
from tripwire.producers.delivery import Delivery, DeliveryCounters
from tripwire.producers.errors import (
    ApprovalDenied,
    BudgetExceeded,
    InvalidArgumentError,
    ProducerError,
    SpoolError,
    ToolBlocked,
)
from tripwire.producers.guard import (
    ALLOW,
    AllowAllGuard,
    ApprovalRequest,
    ApprovalResult,
    Approver,
    GuardDecision,
    ToolGuard,
    ToolRequest,
)
from tripwire.producers.run import Run
from tripwire.producers.spans import ModelCallSpan, ToolCallSpan
from tripwire.producers.tracer import Tracer
from tripwire.producers.transport import DeliveryFailure, KafkaTransport, QueueTransport, Transport
from tripwire.redaction import CustomRedactor, Redactor

__all__ = [
    "ALLOW",
    "AllowAllGuard",
    "ApprovalDenied",
    "ApprovalRequest",
    "ApprovalResult",
    "Approver",
    "BudgetExceeded",
    "BudgetLimits",
    "CostCalculator",
    "CostResult",
    "CustomRedactor",
    "Delivery",
    "DeliveryCounters",
    "DeliveryFailure",
    "DeliverySettings",
    "GuardDecision",
    "InvalidArgumentError",
    "KafkaProducerSettings",
    "KafkaTransport",
    "ModelCallSpan",
    "PriceOverrides",
    "ProducerError",
    "QueueTransport",
    "Redactor",
    "Run",
    "RunBudget",
    "SpoolError",
    "TokenUsage",
    "ToolBlocked",
    "ToolCallSpan",
    "ToolGuard",
    "ToolRequest",
    "Tracer",
    "TracerConfig",
    "Transport",
    "build_config",
    "load_config",
    "use_clock",
]
