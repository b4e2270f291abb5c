"""Timelines: named, append-only entry sequences per scope, in memory or in the spine."""

from event_spine.timeline.base import (
    TIMELINE_EVENT_PREFIX,
    TIMELINE_STREAM_PREFIX,
    TimelineEntry,
    TimelineStore,
    timeline_stream,
)
from event_spine.timeline.memory import MemoryTimeline
from event_spine.timeline.select import TeeTimeline, Timelines
from event_spine.timeline.spine import SpineTimeline, emit_timeline_entry

__all__ = [
    "TIMELINE_EVENT_PREFIX",
    "TIMELINE_STREAM_PREFIX",
    "MemoryTimeline",
    "SpineTimeline",
    "TeeTimeline",
    "TimelineEntry",
    "TimelineStore",
    "Timelines",
    "emit_timeline_entry",
    "timeline_stream",
]
