"""The generation search of the crash-recovery takeover (kafka/takeover.py).

``find_generation`` only reads the error codes a broker answers to Heartbeat requests
at a probed generation, so it is checked here against the two answer patterns it must
handle, written out as functions: Tansu 0.6.0's (IllegalGeneration above the group's
generation, RebalanceInProgress below, read in its group coordinator) and Apache
Kafka's (IllegalGeneration at every other generation). The real Tansu path runs in
tests/chaos/test_recovery.py.
"""

from __future__ import annotations

import pytest

from event_spine.kafka.takeover import Takeover, find_generation

NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS = 0, 22, 25, 27


def tansu(generation: int, probes: list[int]):
    async def heartbeat(probe: int) -> int:
        probes.append(probe)
        if probe > generation:
            return ILLEGAL_GENERATION
        return REBALANCE_IN_PROGRESS if probe < generation else NONE

    return heartbeat


@pytest.mark.parametrize("generation", [0, 1, 2, 3, 37, 1000, 2**31 - 1])
async def test_tansus_answers_lead_to_the_generation(generation: int) -> None:
    probes: list[int] = []
    assert await find_generation(tansu(generation, probes)) == generation
    assert len(probes) <= 64


async def test_kafkas_answers_end_the_search_at_once() -> None:
    probes: list[int] = []

    async def heartbeat(probe: int) -> int:
        probes.append(probe)
        return NONE if probe == 5 else ILLEGAL_GENERATION

    assert await find_generation(heartbeat) is None
    assert probes == [0]  # one wasted request, then the worker rejoins as the member


async def test_an_unknown_member_ends_the_search() -> None:
    async def heartbeat(probe: int) -> int:
        return UNKNOWN_MEMBER_ID

    assert await find_generation(heartbeat) is None


async def test_the_search_is_bounded() -> None:
    async def heartbeat(probe: int) -> int:
        return REBALANCE_IN_PROGRESS  # a group that keeps rebalancing

    assert await find_generation(heartbeat, max_probes=10) is None


def test_the_mode_says_how_the_first_join_goes() -> None:
    assert Takeover().mode == "join"
    assert Takeover("a-1").mode == "rejoin"
    assert Takeover("a-1", 4).mode == "sync"
