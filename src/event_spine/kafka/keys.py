"""The Kafka record key of an event: ``<tenant_id>:<stream_id>``, and its parser.

The key decides the partition (each stream stays in one partition, in order) and
lets readers filter by tenant and stream without decoding the value. Tenant ids
never contain ``:`` (schemas.scope), stream ids may: the first ``:`` splits.
"""

from __future__ import annotations

from typing import Final

from aiokafka.partitioner import DefaultPartitioner

_SEPARATOR: Final = ":"
_PARTITIONER: Final = DefaultPartitioner()


def kafka_key(tenant_id: str, stream_id: str) -> bytes:
    """Partition key: tenant + stream, so each stream stays in one partition, in order."""
    return f"{tenant_id}{_SEPARATOR}{stream_id}".encode()


def split_key(key: bytes | None) -> tuple[str, str] | None:
    """(tenant_id, stream_id) from a key; None for a missing or foreign key."""
    if key is None:
        return None
    tenant, sep, stream = key.decode("utf-8", "replace").partition(_SEPARATOR)
    return (tenant, stream) if sep else None


def partition_of(tenant_id: str, stream_id: str, partitions: int) -> int:
    """The partition a stream lives in: what the producers' partitioners pick for its
    key (murmur2 like the Java client: aiokafka's default, librdkafka's murmur2_random)."""
    ids = list(range(partitions))
    return int(_PARTITIONER(kafka_key(tenant_id, stream_id), ids, ids))
