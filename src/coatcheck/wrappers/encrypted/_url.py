"""Turning encryption on from a store URL: ``?encrypt=env:VARIABLE`` on any store URL.

The keys never go in the URL (URLs end up in logs, process lists and error messages): the
option names the environment variable that holds them, newest first, separated by commas.
``encrypt_read_plaintext=true`` also reads records written before encryption was on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ...crypto import keys_from_env
from ...errors import ConfigError
from ...stores.base import AsyncStore, Store
from .._options import take_options
from ._async import AsyncEncryptedStore
from ._cipher import RecordCipher
from ._sync import EncryptedStore

OPTIONS: Final = ("encrypt", "encrypt_read_plaintext")
"""The URL options this wrapper takes out of a store URL before the store sees it."""
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Encryption:
    """Encryption as a URL asked for it: the keys already read from the environment."""

    cipher: RecordCipher

    def wrap_sync(self, store: Store) -> EncryptedStore:
        return EncryptedStore(store, self.cipher)

    def wrap_async(self, store: AsyncStore) -> AsyncEncryptedStore:
        return AsyncEncryptedStore(store, self.cipher)


def split_url(url: str) -> tuple[str, Encryption | None]:
    """The URL without this wrapper's options, and the encryption they ask for (or None).

    ConfigError when ``encrypt`` is not ``env:VARIABLE``, the variable holds no usable key,
    or ``encrypt_read_plaintext`` comes without ``encrypt``. Other options stay as written.
    """
    left, taken = take_options(url, OPTIONS)
    if not taken:
        return url, None
    return left, _encryption(taken)


def _encryption(options: dict[str, str]) -> Encryption:
    source = options.get("encrypt")
    if source is None:
        raise ConfigError("store URL option encrypt_read_plaintext needs encrypt=env:VARIABLE")
    kind, _, name = source.partition(":")
    if kind != "env" or not name:
        raise ConfigError(
            "store URL option encrypt takes env:VARIABLE, the environment variable holding "
            "the keys (keys never go in a URL)"
        )
    plain = options.get("encrypt_read_plaintext", "false").lower()
    if plain not in _TRUE + _FALSE:
        raise ConfigError("store URL option encrypt_read_plaintext must be true or false")
    cipher = RecordCipher(keys_from_env(name), read_plaintext=plain in _TRUE)
    return Encryption(cipher)
