"""Subscriptions: filtered, tenant-scoped catch-up from the store, then live fan-out."""

from event_spine.kafka.keys import partition_of
from event_spine.subscriptions.filters import EventFilter
from event_spine.subscriptions.subscribe import RecentIds, SubscribeOptions, subscribe

__all__ = ["EventFilter", "RecentIds", "SubscribeOptions", "partition_of", "subscribe"]
