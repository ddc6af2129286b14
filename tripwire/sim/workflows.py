"""The simulated fleet: the seed's workflows as agents with tools, risk tiers, budgets and model routing.

Every number here is a plausible production shape rather than a measurement: heavy-tailed latencies
(log-normal), token counts in the ranges real prompts have, small models first with escalation to a
larger one, and a few percent of errors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tripwire.schemas import Risk


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    model: str
    median_ms: float
    sigma: float = 0.55
    reasoning: bool = False


@dataclass(frozen=True)
class ToolSpec:
    name: str
    risk: Risk
    median_ms: float
    error_rate: float = 0.02
    side_effect: bool = False
    sigma: float = 0.7


@dataclass(frozen=True)
class AgentSpec:
    agent_id: str
    workflow: str
    tenant: str
    principal: str
    versions: tuple[tuple[str, float], ...]  # (version, traffic share)
    default_model: ModelSpec
    escalate_model: ModelSpec
    tools: dict[str, ToolSpec]
    plan: tuple[str, ...]  # "model" or a tool name, in order
    escalate_rate: float = 0.1
    max_steps: int = 12
    max_tool_calls: int = 8
    max_prompt_tokens: int = 40_000
    max_completion_tokens: int = 6_000
    max_cost_usd: float = 0.75
    prompt_tokens: tuple[int, int] = (900, 5_000)
    completion_tokens: tuple[int, int] = (60, 500)
    cache_share: float = 0.5
    extra: dict[str, str] = field(default_factory=dict)

    def pick_version(self, rng: random.Random) -> str:
        versions, weights = zip(*self.versions, strict=True)
        return rng.choices(versions, weights=weights)[0]


GPT_MINI = ModelSpec("openai", "gpt-4.1-mini", 650)
GPT_LARGE = ModelSpec("openai", "gpt-4.1", 1400)
HAIKU = ModelSpec("anthropic", "claude-haiku-4-5", 700)
SONNET = ModelSpec("anthropic", "claude-sonnet-4-5", 1800)
O4_MINI = ModelSpec("openai", "o4-mini", 2200, reasoning=True)

AGENTS: dict[str, AgentSpec] = {
    a.agent_id: a
    for a in (
        AgentSpec(
            agent_id="support-triage", workflow="support_triage", tenant="acme", principal="svc-support",
            versions=(("1.8.0", 0.8), ("1.9.0", 0.2)), default_model=GPT_MINI, escalate_model=GPT_LARGE,
            tools={t.name: t for t in (
                ToolSpec("zendesk.get_ticket", Risk.LOW, 120),
                ToolSpec("zendesk.search_kb", Risk.LOW, 260),
                ToolSpec("zendesk.reply", Risk.MEDIUM, 340, side_effect=True),
            )},
            plan=("model", "zendesk.get_ticket", "zendesk.search_kb", "model", "zendesk.reply"),
            max_cost_usd=0.05,
        ),
        AgentSpec(
            agent_id="refund-assistant", workflow="refunds", tenant="acme", principal="svc-refunds",
            versions=(("2.3.1", 0.7), ("2.4.0", 0.3)), default_model=GPT_MINI, escalate_model=GPT_LARGE,
            tools={t.name: t for t in (
                ToolSpec("zendesk.get_ticket", Risk.LOW, 120),
                ToolSpec("stripe.get_charge", Risk.LOW, 180),
                ToolSpec("stripe.issue_refund", Risk.HIGH, 420, side_effect=True),
                ToolSpec("zendesk.reply", Risk.MEDIUM, 340, side_effect=True),
            )},
            plan=("model", "zendesk.get_ticket", "stripe.get_charge", "model", "stripe.issue_refund", "zendesk.reply"),
            max_steps=8, max_tool_calls=5, max_prompt_tokens=12_000, max_completion_tokens=1_500, max_cost_usd=0.75,
        ),
        AgentSpec(
            agent_id="crm-updater", workflow="sales_ops", tenant="acme", principal="svc-salesops",
            versions=(("0.9.4", 1.0),), default_model=HAIKU, escalate_model=SONNET,
            tools={t.name: t for t in (
                ToolSpec("salesforce.query", Risk.LOW, 300),
                ToolSpec("salesforce.update", Risk.MEDIUM, 450, side_effect=True),
            )},
            plan=("model", "salesforce.query", "model", "salesforce.update"),
            max_cost_usd=0.50,
        ),
        AgentSpec(
            agent_id="expense-categorizer", workflow="finance_expenses", tenant="globex", principal="svc-finance",
            versions=(("3.1.0", 0.5), ("3.2.0", 0.5)), default_model=GPT_MINI, escalate_model=O4_MINI,
            tools={t.name: t for t in (
                ToolSpec("ledger.fetch_expenses", Risk.LOW, 220),
                ToolSpec("ledger.post_categories", Risk.MEDIUM, 260, side_effect=True),
            )},
            plan=("ledger.fetch_expenses", "model", "model", "ledger.post_categories"),
            max_cost_usd=0.50,
        ),
        AgentSpec(
            agent_id="pr-agent", workflow="engineering_prs", tenant="globex", principal="svc-github-bot",
            versions=(("5.0.2", 0.9), ("5.1.0-rc1", 0.1)), default_model=HAIKU, escalate_model=SONNET,
            tools={t.name: t for t in (
                ToolSpec("github.read_issue", Risk.LOW, 200),
                ToolSpec("github.open_pr", Risk.MEDIUM, 900, side_effect=True),
                ToolSpec("ci.run", Risk.LOW, 4000, error_rate=0.06, sigma=0.4),
                ToolSpec("github.merge_pr", Risk.HIGH, 600, side_effect=True),
            )},
            plan=("github.read_issue", "model", "model", "github.open_pr", "ci.run", "github.merge_pr"),
            escalate_rate=0.25, max_cost_usd=2.00, prompt_tokens=(3_000, 14_000), completion_tokens=(200, 1_500),
            max_prompt_tokens=120_000, max_completion_tokens=20_000, max_steps=16, max_tool_calls=10,
        ),
    )
}

FIRST_NAMES = ("ana", "ben", "chloe", "dev", "emil", "fatima", "gus", "hana", "ivan", "jo")


def fake_customer(rng: random.Random) -> dict[str, str]:
    """Customer details of the kind that end up in tool arguments (and must be redacted)."""
    name = rng.choice(FIRST_NAMES)
    return {"customer": name.title(), "email": f"{name}.{rng.randint(10, 999)}@example.com"}


def tool_args(tool: str, rng: random.Random, refund_usd: float) -> dict[str, object]:
    """Arguments a real agent would pass to ``tool``; some carry PII on purpose."""
    ticket = f"ZD-{rng.randint(10_000, 99_999)}"
    if tool.startswith("zendesk.reply"):
        return {"ticket_id": ticket, "to": fake_customer(rng)["email"], "body_chars": rng.randint(200, 1200)}
    if tool.startswith("zendesk"):
        return {"ticket_id": ticket}
    if tool == "stripe.get_charge":
        return {"charge_id": f"ch_{rng.getrandbits(48):012x}"}
    if tool == "stripe.issue_refund":
        charge = f"ch_{rng.getrandbits(48):012x}"
        return {"charge_id": charge, "amount_usd": round(refund_usd, 2), "reason": "duplicate"}
    if tool == "salesforce.query":
        soql = "SELECT Id, StageName FROM Opportunity WHERE AccountId = :acct"
        return {"soql": soql, "acct": f"001{rng.getrandbits(40):x}"}
    if tool == "salesforce.update":
        return {"object": "Opportunity", "id": f"006{rng.getrandbits(40):x}", "fields": {"StageName": "Negotiation"}}
    if tool.startswith("ledger"):
        return {"batch": f"EXP-{rng.randint(1000, 9999)}", "count": rng.randint(5, 60)}
    if tool.startswith("github"):
        return {"repo": "globex/payments", "number": rng.randint(100, 9000)}
    if tool == "ci.run":
        return {"repo": "globex/payments", "ref": f"{rng.getrandbits(40):010x}"}
    return {}


def lognormal_ms(rng: random.Random, median_ms: float, sigma: float) -> float:
    import math

    return rng.lognormvariate(math.log(median_ms), sigma)
