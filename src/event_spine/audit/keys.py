"""Audit keys: the HMAC key of the chain links and the Ed25519 key of the anchors.

``AuditKeys`` is the seam: the local default reads the environment (and key files);
a KMS-backed provider implements the same four methods. Every key has an id that
the record or anchor carries, so a rotated key keeps verifying the records it
signed: keep retired HMAC keys in ``SPINE_AUDIT_KEYS_FILE`` and retired anchor
public keys in ``SPINE_AUDIT_ANCHOR_PUBLIC_KEYS_FILE``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from event_spine.errors import ConfigurationError

#: Shorter HMAC keys are refused: 32 bytes is SHA-256's block-size guidance (RFC 2104).
MIN_KEY_BYTES = 32


class LinkKey(NamedTuple):
    """The HMAC key that seals new chain links, and its id."""

    key_id: str
    secret: bytes


class AnchorSigner(Protocol):
    """Signs anchors; ``key_id`` names its public key."""

    key_id: str

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature of ``message``."""


class AuditKeys(Protocol):
    """Where audit keys come from (the local default, or a KMS)."""

    def link_key(self) -> LinkKey | None:
        """The key new links are sealed with; None writes unkeyed (v1) links."""

    def link_keys(self) -> dict[str, bytes]:
        """Every HMAC key a verifier may meet, by id (current and retired)."""

    def anchor_signer(self) -> AnchorSigner | None:
        """The anchor signing key; None writes no anchors."""

    def anchor_public_keys(self) -> dict[str, bytes]:
        """Raw Ed25519 public keys by id (current and retired)."""


class AuditKeySettings(BaseSettings):
    """Keys and anchoring, from ``SPINE_AUDIT_*`` (docs/audit.md)."""

    model_config = SettingsConfigDict(env_prefix="SPINE_AUDIT_", frozen=True, extra="ignore")

    key: SecretStr | None = Field(default=None, description="HMAC key of new links (>= 32 bytes).")
    key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_.:@-]{1,64}$")
    keys_file: Path | None = Field(default=None, description="JSON {key_id: secret}: retired.")
    anchor_key_file: Path | None = Field(default=None, description="Ed25519 private key, PEM.")
    anchor_public_keys_file: Path | None = Field(
        default=None, description="JSON {key_id: base64 raw public key}: retired anchor keys."
    )
    anchor_every_events: int = Field(default=100, ge=1)
    anchor_every_s: float = Field(default=3600.0, gt=0, description="In event time.")


def anchor_key_id(public_raw: bytes) -> str:
    """A public key's id: ``ed25519:`` and 16 hex digits of its SHA-256."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:16]


def signature_valid(public: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verification by `cryptography` (the offline script has its own)."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class Ed25519Signer:
    """An anchor signer over a private key held in memory."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes_raw()
        self.key_id = anchor_key_id(self.public_raw)

    def sign(self, message: bytes) -> bytes:
        """Deterministic (RFC 8032): two workers signing one anchor agree byte for byte."""
        return self._private.sign(message)


class LocalAuditKeys:
    """Keys from the environment and key files (the default provider)."""

    def __init__(self, settings: AuditKeySettings | None = None) -> None:
        self.settings = settings or AuditKeySettings()
        s = self.settings
        self._retired = _json_file(s.keys_file, "SPINE_AUDIT_KEYS_FILE")
        self._link: LinkKey | None = None
        if s.key is not None:
            secret = s.key.get_secret_value().encode()
            if len(secret) < MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"SPINE_AUDIT_KEY: must be at least {MIN_KEY_BYTES} bytes, got {len(secret)}"
                )
            self._link = LinkKey(s.key_id, secret)
        self._signer = _load_signer(s.anchor_key_file)
        self._public = {
            k: base64.b64decode(v)
            for k, v in _json_file(
                s.anchor_public_keys_file, "SPINE_AUDIT_ANCHOR_PUBLIC_KEYS_FILE"
            ).items()
        }
        if self._signer is not None:
            self._public[self._signer.key_id] = self._signer.public_raw

    def link_key(self) -> LinkKey | None:
        """SPINE_AUDIT_KEY under SPINE_AUDIT_KEY_ID."""
        return self._link

    def link_keys(self) -> dict[str, bytes]:
        """The retired keys of the keys file, and the current one."""
        keys = {k: v.encode() for k, v in self._retired.items()}
        if self._link is not None:
            keys[self._link.key_id] = self._link.secret
        return keys

    def anchor_signer(self) -> Ed25519Signer | None:
        """From SPINE_AUDIT_ANCHOR_KEY_FILE."""
        return self._signer

    def anchor_public_keys(self) -> dict[str, bytes]:
        """The signer's public key and the retired ones."""
        return dict(self._public)


def _json_file(path: Path | None, setting: str) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigurationError(f"{setting}: {path} must hold a JSON object of strings")
    return {str(k): v for k, v in data.items()}


def _load_signer(path: Path | None) -> Ed25519Signer | None:
    if path is None:
        return None
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"SPINE_AUDIT_ANCHOR_KEY_FILE: cannot load {path}: {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"SPINE_AUDIT_ANCHOR_KEY_FILE: {path} is not an Ed25519 key")
    return Ed25519Signer(key)
