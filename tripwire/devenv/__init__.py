"""Development services run on this machine without Docker: a real Kafka broker in KRaft mode."""

from tripwire.devenv.kafka import DevBrokerError, KafkaDevBroker, KafkaDevConfig

__all__ = ["DevBrokerError", "KafkaDevBroker", "KafkaDevConfig"]
