"""The one place that builds Kafka clients, all from one ``KafkaSettings``.

``aiokafka_security_kwargs`` / ``confluent_config`` / ``faststream_security`` map the
settings to each library's names; ``make_*`` build the clients with the per-use
keyword arguments on top (group_id, acks, ...). Their ``start()`` raises one
``KafkaTlsFailed`` / ``KafkaAuthFailed`` naming the setting to fix when the security
settings are why it failed (``diagnose.diagnosed``). No module outside
``event_spine.kafka`` constructs a Kafka client (tests/kafka/test_seam.py checks).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import ssl
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from event_spine.errors import ConfigurationError
from event_spine.kafka.diagnose import diagnosed
from event_spine.kafka.settings import KafkaSettings, env_name

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from faststream.security import BaseSecurity

#: librdkafka refreshes an OAUTHBEARER token at 80% of its lifetime; a token whose
#: expiry cannot be read (not a JWT) is asked for again after this long.
_UNKNOWN_TOKEN_LIFETIME_S = 300.0


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of SSL / SASL_SSL (None for the plaintext protocols)."""
    if not settings.uses_ssl:
        return None
    password = settings.ssl_key_password
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
            password=password.get_secret_value() if password else None,
        )
    except (ssl.SSLError, OSError) as exc:
        # Which file failed is not in OpenSSL's message: name the settings.
        raise ConfigurationError(
            f"cannot load TLS files ({env_name('ssl_cafile')}={settings.ssl_cafile}, "
            f"{env_name('ssl_certfile')}={settings.ssl_certfile}, "
            f"{env_name('ssl_keyfile')}={settings.ssl_keyfile}; key password "
            f"{'set' if password else 'not set'}): {exc}"
        ) from None
    context.check_hostname = settings.ssl_check_hostname
    return context


def _token_provider(settings: KafkaSettings, token_provider: Any) -> Any:
    provider = token_provider or settings.sasl_oauth_token_provider
    if settings.sasl_mechanism == "OAUTHBEARER" and provider is None:
        raise ConfigurationError(
            f"SASL OAUTHBEARER needs a token provider ({env_name('sasl_oauth_token_provider')})"
        )
    return provider


def aiokafka_security_kwargs(settings: KafkaSettings, token_provider: Any = None) -> dict[str, Any]:
    """aiokafka's security arguments (producer, consumer and admin take the same)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.uses_sasl:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = _token_provider(settings, token_provider)
        else:
            password = settings.sasl_password
            kwargs["sasl_plain_username"] = settings.sasl_username
            kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


def aiokafka_kwargs(settings: KafkaSettings, token_provider: Any = None) -> dict[str, Any]:
    """Address, client id and security: what every aiokafka client starts from."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        **aiokafka_security_kwargs(settings, token_provider),
    }


def confluent_config(settings: KafkaSettings, token_provider: Any = None) -> dict[str, Any]:
    """The same settings under librdkafka's names (confluent-kafka's config dict)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol.lower(),
    }
    if settings.uses_ssl:
        files = {
            "ssl.ca.location": settings.ssl_cafile,
            "ssl.certificate.location": settings.ssl_certfile,
            "ssl.key.location": settings.ssl_keyfile,
        }
        config.update({key: str(path) for key, path in files.items() if path is not None})
        if settings.ssl_key_password is not None:
            config["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_check_hostname else "none"
        )
    if settings.uses_sasl:
        config["sasl.mechanisms"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            config["oauth_cb"] = _oauth_callback(_token_provider(settings, token_provider))
        else:
            password = settings.sasl_password
            config["sasl.username"] = settings.sasl_username
            config["sasl.password"] = password.get_secret_value() if password else None
    return config


def _oauth_callback(provider: Any) -> Any:
    """librdkafka's ``oauth_cb`` over the async hook.

    librdkafka calls it from ``poll()`` on a thread that may be running an event loop
    (the sender's), so the coroutine runs on a short-lived thread of its own.
    """

    def oauth_cb(_config: str) -> tuple[str, float]:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            token = str(pool.submit(asyncio.run, provider.token()).result())
        return token, _token_expiry(token)

    return oauth_cb


def _token_expiry(token: str) -> float:
    """A JWT's ``exp`` claim (epoch seconds), else now + a short lifetime."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return time.time() + _UNKNOWN_TOKEN_LIFETIME_S


def faststream_security(settings: KafkaSettings) -> BaseSecurity | None:
    """faststream's security object for ``KafkaBroker(security=...)``.

    OAUTHBEARER's token provider is not part of it: ``make_broker`` passes it as
    ``sasl_oauth_token_provider``.
    """
    from faststream.security import (  # noqa: PLC0415 - faststream is heavy to import
        BaseSecurity,
        SASLOAuthBearer,
        SASLPlaintext,
        SASLScram256,
        SASLScram512,
    )

    if settings.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    use_ssl = settings.uses_ssl
    if not settings.uses_sasl:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if settings.sasl_mechanism == "OAUTHBEARER":
        return SASLOAuthBearer(ssl_context=context, use_ssl=use_ssl)
    classes = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    password = settings.sasl_password
    return classes[str(settings.sasl_mechanism)](
        username=str(settings.sasl_username),
        password=password.get_secret_value() if password else "",
        ssl_context=context,
        use_ssl=use_ssl,
    )


def make_producer(
    settings: KafkaSettings, *, token_provider: Any = None, **kwargs: Any
) -> AIOKafkaProducer:
    """An aiokafka producer (not started); ``kwargs`` are aiokafka's producer options."""
    return diagnosed(
        AIOKafkaProducer(**{**aiokafka_kwargs(settings, token_provider), **kwargs}), settings
    )


def make_consumer(
    settings: KafkaSettings, *topics: str, token_provider: Any = None, **kwargs: Any
) -> AIOKafkaConsumer:
    """An aiokafka consumer (not started); ``kwargs`` are aiokafka's consumer options."""
    return diagnosed(
        AIOKafkaConsumer(*topics, **{**aiokafka_kwargs(settings, token_provider), **kwargs}),
        settings,
    )


def make_admin(
    settings: KafkaSettings, *, token_provider: Any = None, **kwargs: Any
) -> AIOKafkaAdminClient:
    """An aiokafka admin client (not started)."""
    return diagnosed(
        AIOKafkaAdminClient(**{**aiokafka_kwargs(settings, token_provider), **kwargs}), settings
    )


def make_broker(
    settings: KafkaSettings, *, token_provider: Any = None, **kwargs: Any
) -> KafkaBroker:
    """A faststream KafkaBroker; ``kwargs`` are KafkaBroker's options."""
    from faststream.kafka import KafkaBroker  # noqa: PLC0415 - faststream is heavy to import

    options: dict[str, Any] = {"client_id": settings.client_id, **kwargs}
    if settings.sasl_mechanism == "OAUTHBEARER":
        options["sasl_oauth_token_provider"] = _token_provider(settings, token_provider)
    return diagnosed(
        KafkaBroker(settings.bootstrap_servers, security=faststream_security(settings), **options),
        settings,
    )


def confluent_module() -> Any:
    """``confluent_kafka``, or a clear error naming the extra to install."""
    try:
        import confluent_kafka  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ConfigurationError(
            "transport 'confluent' needs the confluent-kafka package: "
            "pip install 'event-spine[confluent]'"
        ) from exc
    return confluent_kafka


def make_confluent_producer(
    settings: KafkaSettings, *, token_provider: Any = None, **config: Any
) -> Any:
    """A confluent-kafka Producer; ``config`` holds librdkafka options on top."""
    return confluent_module().Producer({**confluent_config(settings, token_provider), **config})
