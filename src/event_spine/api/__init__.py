"""The HTTP API (`spine serve`): streams, events, live SSE, emitting, admin; API keys."""

from event_spine.api.app import build_app
from event_spine.api.keys import ApiKey, KeyStore, create_key
from event_spine.api.keystores import key_store_for
from event_spine.api.settings import ApiSettings

__all__ = ["ApiKey", "ApiSettings", "KeyStore", "build_app", "create_key", "key_store_for"]
