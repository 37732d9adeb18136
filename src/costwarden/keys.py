"""Virtual keys: what applications send as their API key, mapped to user and team.

A key is ``cw-`` + 43 url-safe characters (256 random bits). The ledger stores only its
sha256 and a short prefix for display; the plaintext is shown once, when the key is created.

Why a plain, unsalted sha256 is enough: salts and slow hashes (bcrypt, argon2) protect
low-entropy secrets such as passwords from dictionary and brute-force attacks on a stolen
table. A uniformly random 256-bit key has no dictionary, and 2^256 guesses stay out of reach
however fast the hash is. A deterministic digest also lets the lookup go through an index.

Timing: a presented key is never compared to a stored secret byte by byte; it is hashed and the
digest is looked up (index / dict). Lookup timing depends on the digest, which an attacker
cannot steer towards a valid key's digest, so there is no comparison for
``hmac.compare_digest`` to protect.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from costwarden.errors import LedgerUnavailable
from costwarden.ledger.store import Store, VirtualKey
from costwarden.records import Principal, utcnow

log = logging.getLogger("costwarden.keys")

KEY_PREFIX = "cw-"
_KEY_FORMAT = re.compile(r"cw-[A-Za-z0-9_-]{43}")
_DISPLAY_PREFIX_CHARS = 8  # "cw-" + 5 random characters: 30 of the 256 bits, harmless to show


def hash_key(plaintext: str) -> str:
    """The stored form of a key (see module docstring for why sha256 suffices)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def new_key_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just created: the only moment its plaintext exists outside the client."""

    key: VirtualKey
    secret: str = field(repr=False)  # never in a repr, so never in a log line by accident

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def to_public(self, include_secret: bool = False) -> dict[str, Any]:
        public = self.key.to_public()
        if include_secret:
            public["key"] = self.secret
        return public


@dataclass(slots=True)
class _CacheEntry:
    principal: Principal | None  # None: no such key, or revoked
    expires_at: float


class KeyStore:
    """Create, list, revoke and authenticate virtual keys, with a small lookup cache.

    The cache is per instance (nothing global): successful lookups are trusted for ``ttl_s``
    (``GatewayConfig.key_cache_ttl_s``; so a revocation takes at most that long to reach other
    replicas), failed ones for ``negative_ttl_s`` (so a flood of one bad key does not reach
    the database). At most ``max_cache_entries`` are kept, least recently used evicted first.
    Concurrent lookups of the same key share one database query.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 5.0,
        negative_ttl_s: float = 1.0,
        max_cache_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._negative_ttl_s = min(negative_ttl_s, ttl_s)
        self._max_entries = max_cache_entries
        self._clock = clock
        self._cache: OrderedDict[str, _CacheEntry] = OrderedDict()
        self._lookups: dict[str, asyncio.Task[Principal | None]] = {}

    # -- administration ------------------------------------------------------------------
    async def create(
        self,
        user: str | None,
        team: str | None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CreatedKey:
        """Create a key; the result holds the plaintext, which is not stored anywhere."""
        plaintext = new_key_secret()
        key = VirtualKey(
            key_id="key_" + secrets.token_hex(8),
            prefix=plaintext[:_DISPLAY_PREFIX_CHARS],
            user=user,
            team=team,
            name=name,
            created_at=utcnow(),
            metadata=dict(metadata or {}),
        )
        await self._store.create_key(key, hash_key(plaintext))
        return CreatedKey(key, plaintext)

    async def list(self, include_revoked: bool = False) -> builtins.list[VirtualKey]:
        """Keys as listed: id, display prefix, owner, metadata; never the secret or hash."""
        return await self._store.list_keys(include_revoked)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no active key with that id.

        This instance forgets the key at once; other replicas within ``key_cache_ttl_s``.
        """
        revoked = await self._store.revoke_key(key_id, utcnow())
        stale = [
            digest
            for digest, entry in self._cache.items()
            if entry.principal is not None and entry.principal.key_id == key_id
        ]
        for digest in stale:
            del self._cache[digest]
        return revoked

    # -- request path --------------------------------------------------------------------
    async def authenticate(self, plaintext: str) -> Principal | None:
        """The principal of an active key, or None for an unknown, malformed or revoked key."""
        if not _KEY_FORMAT.fullmatch(plaintext):
            return None  # not one of ours: no hashing, no cache entry, no database query
        digest = hash_key(plaintext)
        entry = self._cache.get(digest)
        if entry is not None and entry.expires_at > self._clock():
            self._cache.move_to_end(digest)
            return entry.principal
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.create_task(self._lookup(digest))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda _task: self._lookups.pop(digest, None))
        # shield: a caller that goes away must not cancel the query others are waiting on.
        return await asyncio.shield(lookup)

    async def _lookup(self, digest: str) -> Principal | None:
        try:
            key = await self._store.find_key_by_hash(digest)
        except Exception as exc:
            # The ledger database is down: a key it confirmed before stays trusted (a
            # revocation waits for the database), so the gateway keeps serving its callers.
            stale = self._cache.get(digest)
            if stale is not None:
                log.warning("key lookup failed (%s); using the last answer", type(exc).__name__)
                # Asked again after ``negative_ttl_s``, not by every request meanwhile.
                self._remember(
                    digest, _CacheEntry(stale.principal, self._clock() + self._negative_ttl_s)
                )
                return stale.principal
            raise LedgerUnavailable(
                "the API key cannot be checked: the ledger database is unreachable"
            ) from exc
        principal = None
        if key is not None and key.active:
            principal = Principal(
                key_id=key.key_id, user=key.user, team=key.team, key_name=key.name
            )
        ttl = self._ttl_s if principal is not None else self._negative_ttl_s
        self._remember(digest, _CacheEntry(principal, self._clock() + ttl))
        return principal

    def _remember(self, digest: str, entry: _CacheEntry) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    @property
    def cached_entries(self) -> int:
        return len(self._cache)
