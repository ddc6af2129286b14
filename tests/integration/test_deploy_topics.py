"""``tripwire topics create | describe`` (the compose init service) against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import uid

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def tripwire(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    env["TRIPWIRE_KAFKA_BOOTSTRAP"] = bootstrap
    return subprocess.run([sys.executable, "-m", "tripwire.cli", *args], env=env, capture_output=True, text=True,
                          timeout=90)


def table(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}


def test_create_is_idempotent_and_refuses_another_partition_count(kafka_bootstrap: str) -> None:
    prefix, app_id = uid("tc"), uid("tcapp")
    missing = tripwire("topics", "describe", "--topic-prefix", prefix, "--app-id", app_id, bootstrap=kafka_bootstrap)
    assert missing.returncode == 1
    assert len(table(missing.stdout)) == 9 and all(v == ["missing"] for v in table(missing.stdout).values())

    args = ("topics", "create", "--topic-prefix", prefix, "--app-id", app_id, "--partitions", "3")
    first = tripwire(*args, bootstrap=kafka_bootstrap)
    assert first.returncode == 0, first.stderr
    expected = {f"{prefix}.tripwire.{t}.v1": ["3", "partitions", "delete"]
                for t in ("events", "runs", "metrics", "alerts", "dlq")}
    expected |= {f"{app_id}.{t}": ["3", "partitions", "delete"] for t in ("by-agent", "by-credential", "ticks")}
    expected[f"{prefix}.tripwire.killswitch.v1"] = ["1", "partitions", "compact"]
    assert table(first.stdout) == expected

    again = tripwire(*args, bootstrap=kafka_bootstrap)
    assert again.returncode == 0 and table(again.stdout) == expected

    other = tripwire("topics", "create", "--topic-prefix", prefix, "--app-id", app_id, "--partitions", "4",
                     bootstrap=kafka_bootstrap)
    assert other.returncode == 1
    assert f"{prefix}.tripwire.events.v1 has 3, expected 4" in other.stderr

    described = tripwire("topics", "describe", "--topic-prefix", prefix, "--app-id", app_id,
                         bootstrap=kafka_bootstrap)
    assert described.returncode == 0 and table(described.stdout) == expected
