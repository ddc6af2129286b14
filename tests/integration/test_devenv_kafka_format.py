"""The dev broker formats its storage whatever its random cluster id looks like: a URL-safe base64 id
starts with "-" once in 64, which Kafka's StorageTool read as an option after "-t" (a CI flake)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from unittest import mock

import pytest

from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_a_cluster_id_starting_with_a_dash_formats_and_starts(tmp_path: Path) -> None:
    dashed = uuid.UUID(bytes=bytes([0xF8] + [1] * 15))
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    b = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=tmp_path / "kafka"))
    with mock.patch("tripwire.devenv.kafka.uuid.uuid4", return_value=dashed):
        b.start()
    try:
        assert "cluster.id=-AEBAQEBAQEBAQEBAQEBAQ" in (b.data_dir / "meta.properties").read_text()
    finally:
        b.stop()
