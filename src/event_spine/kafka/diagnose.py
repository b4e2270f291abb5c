"""One clear error for a Kafka connection that failed because of its security settings.

The clients report these failures badly, each in its own way (seen with aiokafka
0.14.0 and confluent-kafka 2.16.1 against Tansu 0.6.0 behind a TLS terminator):

- aiokafka logs the TLS error of each bootstrap host and raises only
  ``KafkaConnectionError("Unable to bootstrap from ...")``; a client without a
  certificate on a mutual-TLS listener only sees "Connection ... closed".
- librdkafka reports "SSL handshake failed" or "SSL connection closed by peer"
  through ``error_cb`` and then times out.
- aiokafka crashes with ``KeyError: 'v'`` when a broker ends a SCRAM exchange with
  an error (Tansu answers an unknown user with ``e=unknown-user``, which aiokafka
  parses as the server's final message); real Kafka answers with an error code
  (``SaslAuthenticationFailed``).

So a SASL refusal is read from the exception, and a TLS failure is confirmed by one
handshake of our own against the first bootstrap server (``probe_tls``), which tells
an untrusted CA, a host name the certificate does not cover, a port that does not
speak TLS (or one that does, for a plaintext client) and a missing client certificate
apart. Each becomes a ``KafkaTlsFailed`` or ``KafkaAuthFailed`` naming the
``SPINE_KAFKA_*`` setting to fix, the mechanism and the user, never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

from aiokafka import errors

from event_spine.errors import KafkaAuthFailed, KafkaSecurityError, KafkaTlsFailed

T = TypeVar("T")

_PROBE_TIMEOUT_S = 5.0
#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_HOSTNAME_CODES = frozenset({62, 64})
#: What OpenSSL says when the peer answers a ClientHello with something else than TLS.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP")
#: librdkafka error names that mean the SASL login was refused.
_RDKAFKA_AUTH = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"})
_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_AIOKAFKA_AUTH = (
    errors.SaslAuthenticationFailed,
    errors.AuthenticationFailedError,
    errors.IllegalSaslStateError,
)


class SecuritySettings(Protocol):
    """The part of ``KafkaSettings`` a diagnosis reads (no secret is read here)."""

    @property
    def bootstrap_servers(self) -> str: ...
    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str | None: ...
    @property
    def sasl_username(self) -> str | None: ...
    @property
    def ssl_cafile(self) -> str | Path | None: ...
    @property
    def ssl_certfile(self) -> str | Path | None: ...
    @property
    def ssl_keyfile(self) -> str | Path | None: ...
    @property
    def ssl_check_hostname(self) -> bool: ...


def first_server(settings: SecuritySettings) -> tuple[str, int]:
    """The first ``host:port`` of the bootstrap list (what the probe dials)."""
    server = settings.bootstrap_servers.split(",")[0].strip()
    host, _, port = server.rpartition(":")
    return host.strip("[]") or server, int(port or 9092)


# -- SASL ------------------------------------------------------------------------------


def auth_failure(exc: object, settings: SecuritySettings) -> KafkaAuthFailed | None:
    """The SASL refusal ``exc`` stands for, or None: an aiokafka exception, a
    confluent-kafka ``KafkaException`` or the ``KafkaError`` its ``error_cb`` got."""
    mechanism = settings.sasl_mechanism or "PLAIN"
    reason = _auth_reason(exc, mechanism)
    if reason is None:
        return None
    user = settings.sasl_username
    fix = (
        "Fix SPINE_KAFKA_SASL_MECHANISM (the broker does not offer it)"
        if "does not support" in reason
        else "Fix SPINE_KAFKA_SASL_USERNAME / SPINE_KAFKA_SASL_PASSWORD, or "
        "SPINE_KAFKA_SASL_MECHANISM if the broker keeps this user under another mechanism"
    )
    return KafkaAuthFailed(
        f"SASL {mechanism} login as user {user!r} was refused by "
        f"{settings.bootstrap_servers}: {reason}. {fix}.",
        mechanism=mechanism,
        username=user,
    )


def _auth_reason(exc: object, mechanism: str) -> str | None:
    if isinstance(exc, KeyError) and exc.args == ("v",) and mechanism.startswith("SCRAM"):
        # aiokafka 0.14.0 parses the broker's "e=<error>" as the final SCRAM message.
        return (
            "the broker ended the SCRAM exchange with an error (an unknown user or a "
            "wrong password)"
        )
    if isinstance(exc, errors.UnsupportedSaslMechanismError):
        return f"the broker does not support {mechanism} ({exc})"
    if isinstance(exc, _AIOKAFKA_AUTH):
        return str(exc) or type(exc).__name__
    args = getattr(exc, "args", ())
    err = args[0] if args and hasattr(args[0], "name") else exc
    name = getattr(err, "name", None)
    if callable(name) and name() in _RDKAFKA_AUTH:
        return str(getattr(err, "str", lambda: err)())
    text = str(exc)
    if "SASL authentication error" in text or "unknown-user" in text:
        return text
    return None


# -- TLS -------------------------------------------------------------------------------


def _client_context(settings: SecuritySettings) -> ssl.SSLContext:
    cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        keyfile = str(settings.ssl_keyfile) if settings.ssl_keyfile else None
        # A key password is not needed to tell why a handshake fails: a protected key
        # that cannot be loaded here is loaded (or refused) by the client itself.
        with contextlib.suppress(OSError, ssl.SSLError):
            context.load_cert_chain(str(settings.ssl_certfile), keyfile)
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _api_versions_request() -> bytes:
    """ApiVersions v0: the first thing every Kafka client sends."""
    client_id = b"spine-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def probe_tls(
    settings: SecuritySettings, timeout_s: float = _PROBE_TIMEOUT_S
) -> KafkaTlsFailed | None:
    """Handshake with the first bootstrap server as the settings say; the TLS failure
    found, or None (no TLS problem, or the server is simply unreachable)."""
    host, port = first_server(settings)
    where = f"{host}:{port}"
    protocol = settings.security_protocol.upper()
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:
        return None  # unreachable: not a security problem, the client's error stands
    with raw:
        if protocol not in _TLS_PROTOCOLS:
            return _tls_on_plaintext(raw, host, where, protocol)
        try:
            tls = _client_context(settings).wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            return _verify_failure(settings, where, exc)
        except (ssl.SSLEOFError, TimeoutError, ConnectionResetError):
            # Connected, but no TLS answer: a plaintext listener (Tansu waits for the
            # rest of a "request" whose length is the ClientHello's first bytes; Kafka
            # closes the connection).
            return _not_tls(where, protocol)
        except ssl.SSLError as exc:
            return _handshake_failure(settings, where, protocol, exc)
        with tls:
            return _after_handshake(settings, where, tls)


def _tls_on_plaintext(
    raw: socket.socket, host: str, where: str, protocol: str
) -> KafkaTlsFailed | None:
    """A plaintext client failed: does the port answer a TLS handshake instead?"""
    try:
        with _unverified_context().wrap_socket(raw, server_hostname=host):
            pass
    except ssl.SSLError as exc:
        # An alert (e.g. "certificate required") is a TLS answer too.
        if "ALERT" not in (exc.reason or "").upper():
            return None
    except OSError:
        return None
    return KafkaTlsFailed(
        f"{where} speaks TLS, but SPINE_KAFKA_SECURITY_PROTOCOL={protocol}: set it to SSL "
        f"(or SASL_SSL) and SPINE_KAFKA_SSL_CAFILE to the CA that signed the broker's "
        f"certificate.",
        setting="SPINE_KAFKA_SECURITY_PROTOCOL",
    )


def _after_handshake(
    settings: SecuritySettings, where: str, tls: ssl.SSLSocket
) -> KafkaTlsFailed | None:
    """One ApiVersions round trip: a TLS 1.3 server refuses a missing or foreign client
    certificate only after the client's side of the handshake has ended, with an alert
    (``TLSV13_ALERT_CERTIFICATE_REQUIRED``) or by closing the connection."""
    try:
        tls.sendall(_api_versions_request())
        if tls.recv(4):
            return None
        detail = "closed the connection right after the TLS handshake"
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        detail = "closed the connection right after the TLS handshake"
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "ALERT" in reason.upper():
            return _client_cert_failure(settings, where, reason)
        return None
    except OSError:
        detail = "reset the connection right after the TLS handshake"
    # No answer and no alert: a listener that wants a client certificate does this
    # (seen: the asyncio TLS terminator; librdkafka: "SSL connection closed by peer").
    # With a certificate configured, that is no evidence of a TLS problem.
    return None if settings.ssl_certfile else _client_cert_failure(settings, where, detail)


def _verify_failure(
    settings: SecuritySettings, where: str, exc: ssl.SSLCertVerificationError
) -> KafkaTlsFailed:
    detail = exc.verify_message or str(exc)
    if exc.verify_code in _HOSTNAME_CODES:
        return KafkaTlsFailed(
            f"TLS to {where} failed: the broker's certificate does not cover the host name "
            f"{where.rsplit(':', 1)[0]!r} ({detail}). Dial a name the certificate lists "
            f"(SPINE_KAFKA_BOOTSTRAP_SERVERS, and the broker's advertised listeners), or, "
            f"only for a broker trusted by other means, SPINE_KAFKA_SSL_CHECK_HOSTNAME=false.",
            setting="SPINE_KAFKA_SSL_CHECK_HOSTNAME",
        )
    trusted = settings.ssl_cafile or "the system trust store"
    return KafkaTlsFailed(
        f"TLS to {where} failed: the broker's certificate is not signed by a CA this client "
        f"trusts ({detail}; trusting {trusted}). Set SPINE_KAFKA_SSL_CAFILE to the CA file "
        f"that signed the broker's certificate.",
        setting="SPINE_KAFKA_SSL_CAFILE",
    )


def _handshake_failure(
    settings: SecuritySettings, where: str, protocol: str, exc: ssl.SSLError
) -> KafkaTlsFailed:
    reason = (exc.reason or str(exc)).upper()
    if any(marker in reason for marker in _NOT_TLS):
        return _not_tls(where, protocol)
    return _client_cert_failure(settings, where, exc.reason or str(exc))


def _not_tls(where: str, protocol: str) -> KafkaTlsFailed:
    return KafkaTlsFailed(
        f"{where} does not speak TLS, but SPINE_KAFKA_SECURITY_PROTOCOL={protocol}: set it "
        f"to PLAINTEXT (or SASL_PLAINTEXT), or point SPINE_KAFKA_BOOTSTRAP_SERVERS at the "
        f"broker's TLS listener.",
        setting="SPINE_KAFKA_SECURITY_PROTOCOL",
    )


def _client_cert_failure(settings: SecuritySettings, where: str, detail: str) -> KafkaTlsFailed:
    if not settings.ssl_certfile:
        return KafkaTlsFailed(
            f"TLS to {where} failed: the broker requires a client certificate (mutual TLS; "
            f"{detail}). Set SPINE_KAFKA_SSL_CERTFILE and SPINE_KAFKA_SSL_KEYFILE.",
            setting="SPINE_KAFKA_SSL_CERTFILE",
        )
    return KafkaTlsFailed(
        f"TLS to {where} failed: the broker refused this client's certificate ({detail}). "
        f"Check SPINE_KAFKA_SSL_CERTFILE / SPINE_KAFKA_SSL_KEYFILE: the certificate must be "
        f"signed by a CA the broker trusts.",
        setting="SPINE_KAFKA_SSL_CERTFILE",
    )


# -- one entry point -------------------------------------------------------------------


def explain(exc: object, settings: SecuritySettings) -> KafkaSecurityError | None:
    """The security error behind a failed connect, or None (then ``exc`` stands).

    Blocking (the TLS probe dials the broker): call ``explain_async`` from a loop.
    """
    if isinstance(exc, KafkaSecurityError):
        return exc
    auth = auth_failure(exc, settings)
    if auth is not None:
        return auth
    return probe_tls(settings)


async def explain_async(exc: object, settings: SecuritySettings) -> KafkaSecurityError | None:
    """``explain`` without blocking the event loop."""
    if isinstance(exc, KafkaSecurityError):
        return exc
    auth = auth_failure(exc, settings)
    if auth is not None:
        return auth
    return await asyncio.to_thread(probe_tls, settings)


async def connecting(start: Callable[[], Awaitable[T]], settings: SecuritySettings) -> T:
    """Await ``start`` (a client's ``start()``); a failure caused by the security
    settings is raised as the one ``KafkaSecurityError`` that names the fix."""
    try:
        return await start()
    except Exception as exc:
        explained = await explain_async(exc, settings)
        if explained is None or explained is exc:
            raise
        raise explained from exc


class _Startable(Protocol):
    async def start(self) -> None: ...


S = TypeVar("S", bound=_Startable)


def diagnosed(client: S, settings: SecuritySettings) -> S:
    """``client`` whose ``start()`` raises the one ``KafkaSecurityError`` naming the fix
    when its security settings are why it failed (the builders in ``clients`` apply it
    to every aiokafka client and faststream broker they make)."""
    start = client.start

    async def start_diagnosed() -> None:
        try:
            await connecting(start, settings)
        except KafkaSecurityError:
            # Released here: an aiokafka client whose start() failed is otherwise left
            # open ("Unclosed AIOKafkaConsumer" on stderr after the one clear line).
            release = getattr(client, "stop", None) or getattr(client, "close", None)
            if release is not None:
                with contextlib.suppress(Exception):
                    await release()
            raise

    client.start = start_diagnosed  # type: ignore[method-assign]
    return client
