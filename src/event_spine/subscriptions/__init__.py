"""Subscriptions: filtered, tenant-scoped catch-up from the store, then live fan-out."""

from event_spine.kafka.keys import partition_of
from event_spine.subscriptions.filters import SubscriptionFilter
from event_spine.subscriptions.subscribe import RecentIds, SubscribeOptions, subscribe

__all__ = ["RecentIds", "SubscribeOptions", "SubscriptionFilter", "partition_of", "subscribe"]
