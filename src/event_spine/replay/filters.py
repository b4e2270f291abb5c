"""Which records of a topic a replay keeps: tenant, env, mode, project, event type and
stream prefix.

Filtering runs before the sink's BatchProcessor, on the raw record, as cheaply as it
can: tenant and stream come from the Kafka key (``<tenant>:<stream>``) without
decoding; the other fields from a partial decode that skips the payload. A record
the filter cannot read is kept, so the processor classifies it as poison with its
real reason instead of the filter hiding it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Final

import msgspec

from event_spine.backends.base import StreamKey
from event_spine.errors import ConfigurationError
from event_spine.kafka.keys import split_key


class _ProbeRouting(msgspec.Struct):
    tenant_id: str = ""
    env: str = ""
    mode: str = ""
    project_id: str = ""


class _Probe(msgspec.Struct):
    """The few fields a filter reads; unknown fields (payload...) are skipped unparsed."""

    event_type: str = ""
    stream_id: str = ""
    routing: _ProbeRouting = msgspec.field(default_factory=_ProbeRouting)


_probe_decoder: Final = msgspec.json.Decoder(_Probe)


def probe_stream(value: bytes | None) -> tuple[StreamKey, str] | None:
    """The stream and event type a wire record names, or None if it cannot be read."""
    if value is None:
        return None
    try:
        probe = _probe_decoder.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    r = probe.routing
    return StreamKey(r.tenant_id, r.env, r.mode, r.project_id, probe.stream_id), probe.event_type


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Keep a record when every non-empty criterion matches (values within one are OR-ed)."""

    tenants: frozenset[str] = frozenset()
    envs: frozenset[str] = frozenset()
    modes: frozenset[str] = frozenset()
    projects: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    stream_prefixes: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        tenants: Iterable[str] = (),
        envs: Iterable[str] = (),
        modes: Iterable[str] = (),
        projects: Iterable[str] = (),
        event_types: Iterable[str] = (),
        stream_prefixes: Iterable[str] = (),
    ) -> ReplayFilter:
        """Build from any iterables (CLI options arrive as lists)."""
        return cls(
            frozenset(tenants),
            frozenset(envs),
            frozenset(modes),
            frozenset(projects),
            frozenset(event_types),
            tuple(stream_prefixes),
        )

    @property
    def empty(self) -> bool:
        """True when the filter keeps everything."""
        return not (
            self.tenants
            or self.envs
            or self.modes
            or self.projects
            or self.event_types
            or self.stream_prefixes
        )

    def restricted_to(self, tenant: str, env: str, mode: str, project: str) -> ReplayFilter:
        """This filter within one scope; refuses a filter that excludes the scope.

        A replay into a route's store must never write another scope's events there.
        """
        wanted = {"tenants": tenant, "envs": env, "modes": mode, "projects": project}
        for name, value in wanted.items():
            allowed: frozenset[str] = getattr(self, name)
            if allowed and value not in allowed:
                raise ConfigurationError(
                    f"The filter's {name} {sorted(allowed)} exclude the target route's "
                    f"scope ({name[:-1]}={value!r}): nothing could be replayed."
                )
        return ReplayFilter(
            frozenset({tenant}),
            frozenset({env}),
            frozenset({mode}),
            frozenset({project}),
            self.event_types,
            self.stream_prefixes,
        )

    def keeps(self, key: bytes | None, value: bytes | None) -> bool:
        """False only when the record certainly fails a criterion."""
        if self.empty:
            return True
        from_key = split_key(key)
        if from_key is not None and not self._stream_matches(*from_key):
            return False
        if from_key is not None and not (
            self.envs or self.modes or self.projects or self.event_types
        ):
            return True  # the key answered every criterion set
        probed = probe_stream(value)
        if probed is None:
            return True  # unreadable: the processor names the poison
        stream, event_type = probed
        return self.matches(stream, event_type)

    def matches(self, stream: StreamKey, event_type: str) -> bool:
        """The criteria applied to a decoded stream identity and event type."""
        return (
            self._stream_matches(stream.tenant_id, stream.stream_id)
            and _allowed(self.envs, stream.env)
            and _allowed(self.modes, stream.mode)
            and _allowed(self.projects, stream.project_id)
            and _allowed(self.event_types, event_type)
        )

    def _stream_matches(self, tenant: str, stream_id: str) -> bool:
        return _allowed(self.tenants, tenant) and (
            not self.stream_prefixes or stream_id.startswith(self.stream_prefixes)
        )

    def describe(self) -> str:
        """One line for logs and the CLI."""
        parts = [
            f"{f.name}={sorted(getattr(self, f.name))}"
            for f in fields(self)
            if getattr(self, f.name)
        ]
        return ", ".join(parts) or "everything"


def _allowed(allowed: frozenset[str], value: str) -> bool:
    return not allowed or value in allowed
