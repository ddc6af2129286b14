"""Operator state encoding: format v4 (binary header + MessagePack) against v3 (JSON), per state.

The states are those a worker writes at each commit for its changed keys: a run of 8 events (the
runs stage, the bulk of the keys) and an agent's latency windows and detector state. ``encode`` is
``stage.dumps`` (v4) against the same fields as v3 wrote them (``json.dumps``); ``decode`` is
``stage.loads`` of each (v3 also migrates to v4's shape, as a restarted worker would once).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._harness import Result, interleaved, report

N = 20_000


def _states() -> dict[str, tuple[Any, Any]]:
    from tripwire.processors import Pipeline
    from tripwire.schemas.samples import sample_run

    p = Pipeline()
    now = time.time()
    for seed in range(3):
        for e in sample_run(seed, steps=6):
            p.process(e, now)
    run = next(iter(p.states["runs"].values()))
    agent = next(iter(p.states["agents"].values()))
    return {"run": (p.runs, run), "agent": (p.agents, agent)}


def run() -> list[dict[str, Any]]:
    from tripwire.processors.state_format import encode_json_v3, read

    out = []
    for name, (stage, st) in _states().items():
        v4 = stage.dumps(st)
        fields = read(v4)[1]
        v3 = encode_json_v3(fields)

        def enc_v3(fields: dict[str, Any] = fields) -> int:
            for _ in range(N):
                encode_json_v3(fields)
            return N

        def enc_v4(stage: Any = stage, st: Any = st) -> int:
            for _ in range(N):
                stage.dumps(st)
            return N

        def dec_v3(stage: Any = stage, v3: bytes = v3) -> int:
            for _ in range(N):
                stage.loads(v3)
            return N

        def dec_v4(stage: Any = stage, v4: bytes = v4) -> int:
            for _ in range(N):
                stage.loads(v4)
            return N

        # the v4 encode includes building the fields (to_dict) and the due time; v3's only json.dumps
        b_enc, c_enc = interleaved(enc_v3, enc_v4, rounds=3)
        b_dec, c_dec = interleaved(dec_v3, dec_v4, rounds=3)
        extra = {"v3_bytes": len(v3), "v4_bytes": len(v4)}
        out.append(
            {
                "name": f"state_encode_{name}_v4",
                "value": c_enc,
                "unit": "states/s",
                "ratio": c_enc / b_enc,
                "baseline": b_enc,
                "extra": extra,
            }
        )
        out.append(
            {
                "name": f"state_decode_{name}_v4",
                "value": c_dec,
                "unit": "states/s",
                "ratio": c_dec / b_dec,
                "baseline": b_dec,
                "extra": extra,
            }
        )
    return out


def main() -> None:
    report([Result(**r) for r in run()])


if __name__ == "__main__":
    main()
