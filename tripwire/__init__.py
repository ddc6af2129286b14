"""tripwire: agent-ops telemetry and control plane.

The top-level folders of the repository are the subpackages of this namespace:
``tripwire.schemas`` (the event contract), ``tripwire.killswitch`` (signed kill-switch commands),
``tripwire.producers`` (the agent SDK),
``tripwire.processors`` (stream processing), ``tripwire.sinks`` (ClickHouse) and
``tripwire.dashboard`` (Streamlit).
"""

from tripwire.core.errors import TripwireError

__version__ = "0.1.0"
__all__ = ["TripwireError", "__version__"]
