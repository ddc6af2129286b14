"""Framework adapters: agents built on a framework are traced through the normal :class:`~tripwire.producers.Tracer`
and obey its guard (the kill switch), budgets and approver.

Each adapter is its own module behind its own extra, imported explicitly so the base SDK stays light:

- ``tripwire.producers.adapters.langchain`` (``pip install 'tripwire[langchain]'``): LangChain / LangGraph;
- ``tripwire.producers.adapters.openai_agents`` (``pip install 'tripwire[openai-agents]'``): OpenAI Agents SDK;
- ``tripwire.producers.adapters.claude_agent`` (``pip install 'tripwire[claude-agent]'``): Claude Agent SDK.

Nothing is imported here: importing this package never needs a framework.
"""

__all__: list[str] = []
