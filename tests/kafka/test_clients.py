"""Every client of the package is built from one KafkaSettings: what reaches aiokafka,
librdkafka (the config dict) and faststream (the security object). No broker needed:
clients are constructed, not started; the client certificate is checked by a real TLS
handshake against a local server that requires one."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.abc import AbstractTokenProvider
from faststream.security import BaseSecurity, SASLOAuthBearer, SASLScram512
from pydantic import SecretStr, ValidationError
from tests.kafka.certs import Certificates, make_certificates

from event_spine.errors import ConfigurationError
from event_spine.kafka import (
    KafkaSettings,
    aiokafka_security_kwargs,
    confluent_config,
    faststream_security,
    load_kafka_settings,
    make_admin,
    make_broker,
    make_confluent_producer,
    make_consumer,
    make_producer,
    ssl_context,
)

PASSWORD = "s3cr3t-pa55"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def scram(certs: Certificates) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="broker-1:9093,broker-2:9093",
        client_id="spine-test",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="spine",
        sasl_password=SecretStr(PASSWORD),
        ssl_cafile=certs.ca,
    )


@pytest.fixture
def mtls(certs: Certificates) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="broker-1:9093",
        security_protocol="SSL",
        ssl_cafile=certs.ca,
        ssl_certfile=certs.client_cert,
        ssl_keyfile=certs.client_key,
        ssl_key_password=SecretStr(certs.client_key_password),
    )


@pytest.fixture
async def built() -> AsyncIterator[Callable[[KafkaSettings], list[Any]]]:
    """Builds the package's aiokafka clients (never started) and closes them after."""
    clients: list[Any] = []

    def build(settings: KafkaSettings) -> list[Any]:
        """The AIOKafkaClient inside each aiokafka client the package builds."""
        producer = make_producer(settings, acks="all")
        consumer = make_consumer(settings, "spine.events", group_id="g", enable_auto_commit=False)
        admin = make_admin(settings)
        clients.extend([producer, consumer, admin])
        return [producer.client, consumer._client, admin._client]

    yield build
    for client in clients:
        await (client.close() if hasattr(client, "close") else client.stop())


async def test_sasl_ssl_scram_reaches_every_client(
    scram: KafkaSettings, built: Callable[[KafkaSettings], list[Any]]
) -> None:
    for client in built(scram):
        assert client._bootstrap_servers == "broker-1:9093,broker-2:9093"
        assert client._client_id == "spine-test"
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "spine"
        assert client._sasl_plain_password == PASSWORD
        context = client._ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert [c["subject"] for c in context.get_ca_certs()] == [
            ((("commonName", "event-spine test kafka"),),)
        ]

    config = confluent_config(scram)
    assert config == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "client.id": "spine-test",
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "spine",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(scram.ssl_cafile),
        "ssl.endpoint.identification.algorithm": "https",
    }
    # librdkafka itself accepts the names and loads the CA (it fails on a bad one).
    make_confluent_producer(scram, **{"acks": "all"}).flush(0)

    security = faststream_security(scram)
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password, security.use_ssl) == ("spine", PASSWORD, True)
    assert security.ssl_context is not None
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED
    broker = make_broker(scram, graceful_timeout=1.0)
    reaching = broker._connection_kwargs
    assert reaching["bootstrap_servers"] == ["broker-1:9093,broker-2:9093"]
    assert reaching["client_id"] == "spine-test"
    assert reaching["security_protocol"] == "SASL_SSL"
    assert reaching["sasl_mechanism"] == "SCRAM-SHA-512"
    assert reaching["sasl_plain_username"] == "spine"
    assert reaching["sasl_plain_password"] == PASSWORD


async def _peer_common_name(certs: Certificates, context: ssl.SSLContext) -> str:
    """Handshake with a local server that requires a client certificate signed by the CA."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs.ca)
    server_context.load_cert_chain(certs.server_cert, certs.server_key)
    server_context.verify_mode = ssl.CERT_REQUIRED
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.set_result(dict(pair[0] for pair in peer["subject"])["commonName"])
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        writer.close()
        return await asyncio.wait_for(seen, 10)
    finally:
        server.close()
        await server.wait_closed()


async def test_ssl_with_client_certificate_reaches_every_client(
    mtls: KafkaSettings, certs: Certificates, built: Callable[[KafkaSettings], list[Any]]
) -> None:
    contexts = []
    for client in built(mtls):
        assert client._security_protocol == "SSL"
        assert client._sasl_plain_password is None
        contexts.append(client._ssl_context)
    security = faststream_security(mtls)
    assert type(security) is BaseSecurity
    assert security.use_ssl
    contexts.append(security.ssl_context)
    assert make_broker(mtls)._connection_kwargs["security_protocol"] == "SSL"
    for context in contexts:  # each presents the client certificate (decrypted key)
        assert await _peer_common_name(certs, context) == "spine-client"

    config = confluent_config(mtls)
    assert config == {
        "bootstrap.servers": "broker-1:9093",
        "client.id": "event-spine",
        "security.protocol": "ssl",
        "ssl.ca.location": str(certs.ca),
        "ssl.certificate.location": str(certs.client_cert),
        "ssl.key.location": str(certs.client_key),
        "ssl.key.password": certs.client_key_password,
        "ssl.endpoint.identification.algorithm": "https",
    }
    make_confluent_producer(mtls).flush(0)  # librdkafka decrypts the key with the password


def test_check_hostname_off_reaches_every_client(certs: Certificates) -> None:
    settings = KafkaSettings(
        bootstrap_servers="10.0.0.1:9093",
        security_protocol="SSL",
        ssl_cafile=certs.ca,
        ssl_check_hostname=False,
    )
    context = ssl_context(settings)
    assert context is not None
    assert not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is still verified
    assert confluent_config(settings)["ssl.endpoint.identification.algorithm"] == "none"


def test_plaintext_is_the_default() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9092")
    assert aiokafka_security_kwargs(settings) == {"security_protocol": "PLAINTEXT"}
    assert confluent_config(settings)["security.protocol"] == "plaintext"
    assert faststream_security(settings) is None


class _Tokens(AbstractTokenProvider):
    def __init__(self, token: str) -> None:
        self.value = token

    async def token(self) -> str:
        return self.value


def _jwt(exp: int) -> str:
    def part(claims: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'sub': 'spine'})}.sig"


async def test_oauthbearer_uses_the_hook_on_every_client(
    built: Callable[[KafkaSettings], list[Any]],
) -> None:
    tokens = _Tokens(_jwt(2_000_000_000))
    settings = KafkaSettings(
        bootstrap_servers="broker:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=tokens,
    )
    for client in built(settings):
        assert client._sasl_mechanism == "OAUTHBEARER"
        assert client._sasl_oauth_token_provider is tokens
    assert isinstance(faststream_security(settings), SASLOAuthBearer)
    assert make_broker(settings)._connection_kwargs["sasl_oauth_token_provider"] is tokens
    config = confluent_config(settings)
    assert config["sasl.mechanisms"] == "OAUTHBEARER"
    # librdkafka calls oauth_cb from poll(), possibly on a thread running a loop (here).
    assert config["oauth_cb"]("") == (tokens.value, 2_000_000_000.0)
    make_confluent_producer(settings).flush(0)
    # The hook can be named in the environment for CLI processes.
    loaded = KafkaSettings(
        bootstrap_servers="broker:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=f"{__name__}:_provider_factory",
    )
    assert await loaded.sasl_oauth_token_provider.token() == "from-factory"


def _provider_factory() -> _Tokens:
    return _Tokens("from-factory")


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"security_protocol": "SASL_SSL"}, "SPINE_KAFKA_SASL_MECHANISM"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_password": "x"},
            "SPINE_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "u",
            },
            "SPINE_KAFKA_SASL_PASSWORD",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "SPINE_KAFKA_SASL_OAUTH_TOKEN_PROVIDER",
        ),
        ({"sasl_mechanism": "PLAIN"}, "SPINE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"ssl_cafile": "/etc/hostname"}, "SPINE_KAFKA_SSL_CAFILE is set"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "SPINE_KAFKA_SSL_CAFILE",
        ),
        ({"security_protocol": "SSL", "ssl_keyfile": "/etc/hostname"}, "SPINE_KAFKA_SSL_CERTFILE"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_token_provider": "nowhere.module:thing",
            },
            "sasl_oauth_token_provider",
        ),
    ],
)
def test_bad_combinations_name_the_setting(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        KafkaSettings(bootstrap_servers="b:9092", **values)
    assert named in str(caught.value)


def test_unreadable_tls_files_name_the_settings(tmp_path: Path, certs: Certificates) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    settings = KafkaSettings(bootstrap_servers="b:9093", security_protocol="SSL", ssl_cafile=bad)
    with pytest.raises(ConfigurationError, match="SPINE_KAFKA_SSL_CAFILE"):
        make_producer(settings)
    wrong_password = KafkaSettings(
        bootstrap_servers="b:9093",
        security_protocol="SSL",
        ssl_certfile=certs.client_cert,
        ssl_keyfile=certs.client_key,
        ssl_key_password=SecretStr("wrong-" + PASSWORD),
    )
    with pytest.raises(ConfigurationError, match="SPINE_KAFKA_SSL_KEYFILE") as caught:
        faststream_security(wrong_password)
    assert PASSWORD not in str(caught.value)


def test_loads_from_env_and_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certs: Certificates
) -> None:
    env_file = tmp_path / "spine.env"
    env_file.write_text(
        "SPINE_KAFKA_BOOTSTRAP_SERVERS=from-file:9093\n"
        "SPINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL\n"
        "SPINE_KAFKA_SASL_MECHANISM=PLAIN\n"
        "SPINE_KAFKA_SASL_USERNAME=$ConnectionString\n"
        f"SPINE_KAFKA_SASL_PASSWORD={PASSWORD}\n"
        f"SPINE_KAFKA_SSL_CAFILE={certs.ca}\n"
    )
    from_file = load_kafka_settings(env_file)
    assert from_file.sasl_username == "$ConnectionString"
    assert from_file.sasl_password == SecretStr(PASSWORD)
    # The environment wins over the file; an override (a --bootstrap flag) over both.
    monkeypatch.setenv("SPINE_KAFKA_BOOTSTRAP_SERVERS", "from-env:9093")
    assert load_kafka_settings(env_file).bootstrap_servers == "from-env:9093"
    overridden = load_kafka_settings(env_file, bootstrap_servers="flag:9093", client_id=None)
    assert overridden.bootstrap_servers == "flag:9093"
    assert overridden.client_id == "event-spine"
    assert from_file.with_overrides(bootstrap_servers="x:1").sasl_mechanism == "PLAIN"


def test_secrets_stay_masked(scram: KafkaSettings) -> None:
    assert PASSWORD not in repr(scram)
    assert PASSWORD not in str(scram.model_dump())
    assert PASSWORD not in scram.model_dump_json()
    with pytest.raises(ValidationError) as caught:
        KafkaSettings(
            bootstrap_servers="b:9092",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_password=PASSWORD,
        )
    assert PASSWORD not in str(caught.value)
