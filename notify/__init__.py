"""tripwire.notify: the outbound sink that routes alerts and kill-switch trips/resets to people.

``tripwire notify`` consumes ``tripwire.alerts.v1`` and ``tripwire.killswitch.v1`` and delivers each record
to the routes it matches (signed webhooks, Slack, PagerDuty), committing offsets only after delivery or a
dead letter. It is a sink, not a stream processor: it computes nothing, so it lives beside the ClickHouse
sink rather than in ``tripwire.processors``.

- :mod:`tripwire.notify.notifier`: the consumer (:class:`Notifier`);
- :mod:`tripwire.notify.routes`: the routes file (matching, grouping, rate limits);
- :mod:`tripwire.notify.channels`: payloads and signatures of each channel;
- :mod:`tripwire.notify.delivery`: HTTP delivery with retries;
- :mod:`tripwire.notify.state`: grouping and the per-partition commit watermark;
- :mod:`tripwire.notify.config`: ``NotifyConfig`` (env prefix ``TRIPWIRE_NOTIFY_``).
"""

from tripwire.notify.channels import (
    DEDUP_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_SCHEME,
    TIMESTAMP_HEADER,
    HttpRequest,
    Notification,
    from_alert,
    from_command,
    pagerduty_event,
    signature,
    slack_message,
    verify_signature,
    webhook_document,
)
from tripwire.notify.config import NotifyConfig, NotifyError, RoutesError
from tripwire.notify.delivery import DeliveryResult, RetryPolicy, deliver, retry_after_s
from tripwire.notify.metrics import NotifierMetrics
from tripwire.notify.notifier import Notifier, NotifyStats
from tripwire.notify.routes import Match, RateLimit, Route, load_routes, routes_from_dict

__all__ = [
    "DEDUP_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "HttpRequest",
    "Match",
    "Notification",
    "Notifier",
    "NotifierMetrics",
    "NotifyConfig",
    "NotifyError",
    "NotifyStats",
    "RateLimit",
    "RetryPolicy",
    "Route",
    "RoutesError",
    "deliver",
    "from_alert",
    "from_command",
    "load_routes",
    "pagerduty_event",
    "retry_after_s",
    "routes_from_dict",
    "signature",
    "slack_message",
    "verify_signature",
    "webhook_document",
]
