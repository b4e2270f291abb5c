"""What the clients report on a misconfigured secured connection becomes ONE clear error
naming the setting to fix (real TLS listeners and a real SASL broker; nothing mocked)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from security_support import librdkafka_first_error

from event_spine.errors import KafkaAuthFailed, KafkaTlsFailed
from event_spine.kafka import (
    KafkaSettings,
    aiokafka_kwargs,
    confluent_config,
    make_admin,
    make_broker,
    make_consumer,
    make_producer,
)
from event_spine.kafka.diagnose import connecting, explain

PASSWORD = "s3cret-never-shown"

pytestmark = pytest.mark.timeout(120)


def Sec(bootstrap: str, protocol: str, **kw: Any) -> KafkaSettings:  # noqa: N802
    """KafkaSettings for one case (the env's SPINE_KAFKA_* are overridden)."""
    return KafkaSettings(bootstrap_servers=bootstrap, security_protocol=protocol, **kw)


async def _aiokafka_start(sec: KafkaSettings) -> None:
    producer = make_producer(sec, request_timeout_ms=5000)
    try:
        await connecting(producer.start, sec)
    finally:
        await producer.stop()


def _assert_names(err: BaseException, setting: str) -> None:
    assert setting in str(err), str(err)
    assert PASSWORD not in str(err)


@pytest.fixture(params=["aiokafka", "confluent"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _failure(sec: KafkaSettings, transport: str) -> BaseException:
    """Connect with one client library; the explained error it ended in."""
    if transport == "aiokafka":
        with pytest.raises((KafkaTlsFailed, KafkaAuthFailed)) as info:
            await _aiokafka_start(sec)
        return info.value
    error = await asyncio.to_thread(librdkafka_first_error, confluent_config(sec))
    explained = await asyncio.to_thread(explain, error, sec)
    assert explained is not None, f"librdkafka reported {error!r}, not explained"
    return explained


#: (listener fixture, protocol, dial the broker's plaintext port, setting named, text shown)
TLS_CASES = {
    "untrusted-ca": ("untrusted_tls", "SSL", False, "SPINE_KAFKA_SSL_CAFILE", "not signed by a CA"),
    "wrong-hostname": (
        "wrong_host_tls",
        "SSL",
        False,
        "SPINE_KAFKA_SSL_CHECK_HOSTNAME",
        "SPINE_KAFKA_BOOTSTRAP_SERVERS",
    ),
    "plaintext-on-tls": (
        "tls",
        "PLAINTEXT",
        False,
        "SPINE_KAFKA_SECURITY_PROTOCOL",
        "SPINE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
    ),
    "tls-on-plaintext": (
        "tls",
        "SSL",
        True,
        "SPINE_KAFKA_SECURITY_PROTOCOL",
        "does not speak TLS",
    ),
    "mtls-without-client-cert": (
        "mtls",
        "SSL",
        False,
        "SPINE_KAFKA_SSL_CERTFILE",
        "SPINE_KAFKA_SSL_KEYFILE",
    ),
}


@pytest.mark.parametrize("case", sorted(TLS_CASES))
async def test_tls_misconfiguration_names_the_setting(
    request: pytest.FixtureRequest, pki: Any, transport: str, case: str
) -> None:
    listener, protocol, plaintext_port, setting, text = TLS_CASES[case]
    endpoint = request.getfixturevalue(listener)
    address = endpoint.broker.bootstrap_servers if plaintext_port else endpoint.bootstrap_servers
    tls_files = {"ssl_cafile": pki.ca.cafile} if protocol == "SSL" else {}
    err = await _failure(Sec(address, protocol, **tls_files), transport)
    assert isinstance(err, KafkaTlsFailed)
    assert err.setting == setting
    _assert_names(err, text)
    if case == "mtls-without-client-cert":
        assert endpoint.proxy.refusals, "the listener saw no refused handshake"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_refusal_names_mechanism_and_user_never_the_password(
    sasl_broker: Any, transport: str, mechanism: str
) -> None:
    sec = Sec(
        sasl_broker.bootstrap_servers,
        "SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="mallory",
        sasl_password=PASSWORD,
    )
    err = await _failure(sec, transport)
    assert isinstance(err, KafkaAuthFailed)
    assert (err.mechanism, err.username) == (mechanism, "mallory")
    assert mechanism in str(err)
    assert "'mallory'" in str(err)
    _assert_names(err, "SPINE_KAFKA_SASL_USERNAME")
    assert PASSWORD not in repr(err.__cause__)


async def test_a_reachable_secured_broker_is_not_misdiagnosed(tls: Any, pki: Any) -> None:
    """A plain connection failure (nobody listening) is left as it is: no security
    error is invented for it, and a correct TLS setup explains to nothing."""
    sec = Sec(tls.bootstrap_servers, "SSL", ssl_cafile=pki.ca.cafile)
    assert await asyncio.to_thread(explain, ConnectionError("x"), sec) is None
    down = sec.with_overrides(bootstrap_servers="localhost:1")
    assert await asyncio.to_thread(explain, ConnectionError("x"), down) is None


async def test_aiokafka_still_crashes_with_keyerror_on_tansu_scram_refusal(
    sasl_broker: Any,
) -> None:
    """Pins the aiokafka 0.14.0 behaviour ``diagnose`` maps: if this fails, aiokafka
    now reports SCRAM refusals itself and the KeyError mapping can go."""
    sec = Sec(
        sasl_broker.bootstrap_servers,
        "SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="mallory",
        sasl_password=PASSWORD,
    )
    producer = AIOKafkaProducer(**aiokafka_kwargs(sec), request_timeout_ms=5000)
    try:
        with pytest.raises(KeyError) as info:
            await producer.start()
        assert info.value.args == ("v",)
    finally:
        await producer.stop()


BUILDERS = {
    "producer": lambda s: make_producer(s, request_timeout_ms=5000),
    "consumer": lambda s: make_consumer(s, "spine-any", request_timeout_ms=5000),
    "admin": lambda s: make_admin(s, request_timeout_ms=5000),
    "faststream": lambda s: make_broker(s, request_timeout_ms=5000),
}


@pytest.mark.parametrize("builder", sorted(BUILDERS))
async def test_every_built_client_raises_the_clear_error_on_start(
    sasl_broker: Any, tls: Any, builder: str
) -> None:
    """The builders in event_spine.kafka.clients wire the diagnosis into start()."""
    refused = Sec(
        sasl_broker.bootstrap_servers,
        "SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="mallory",
        sasl_password=PASSWORD,
    )
    plaintext_on_tls = Sec(tls.bootstrap_servers, "PLAINTEXT")
    for sec, error in ((refused, KafkaAuthFailed), (plaintext_on_tls, KafkaTlsFailed)):
        client = BUILDERS[builder](sec)
        try:
            async with asyncio.timeout(60):  # bounded: one clear error, no retry loop
                with pytest.raises(error) as info:
                    await client.start()
        finally:
            with contextlib.suppress(Exception):
                await (client.close() if builder == "admin" else client.stop())
        assert PASSWORD not in str(info.value)
