"""Virtual keys: created once in clear, stored hashed, cached with bounded staleness."""

from __future__ import annotations

import re

from costwarden.keys import KeyStore, hash_key, new_key_secret
from costwarden.ledger import Store, VirtualKey
from costwarden.records import Principal, utcnow


class FakeClock:
    """Monotonic time the test moves by hand (the cache's TTLs, without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key_store(store: Store, clock: FakeClock, max_cache_entries: int = 100) -> KeyStore:
    return KeyStore(
        store, ttl_s=5.0, negative_ttl_s=1.0, max_cache_entries=max_cache_entries, clock=clock
    )


async def test_create_returns_the_secret_once_and_stores_only_its_hash(
    ledger_store: Store,
) -> None:
    keys = KeyStore(ledger_store)
    created = await keys.create("alice", "ml", "laptop", {"purpose": "tests"})
    assert re.fullmatch(r"cw-[A-Za-z0-9_-]{43}", created.secret)
    assert created.secret not in repr(created)
    assert created.to_public(include_secret=True)["key"] == created.secret
    stored = await ledger_store.find_key_by_hash(hash_key(created.secret))
    assert stored is not None and stored.key_id == created.key_id
    assert stored.metadata == {"purpose": "tests"}
    (listed,) = await keys.list()
    public = str(listed.to_public())
    assert created.secret not in public and hash_key(created.secret) not in public
    assert listed.prefix == created.secret[:8] and listed.user == "alice"


async def test_authenticate_maps_a_key_to_its_principal(ledger_store: Store) -> None:
    keys = KeyStore(ledger_store)
    created = await keys.create("alice", "ml", "laptop")
    principal = await keys.authenticate(created.secret)
    assert principal == Principal(created.key_id, "alice", "ml", "laptop")
    assert await keys.authenticate(new_key_secret()) is None  # well formed, unknown
    assert await keys.authenticate("sk-not-ours") is None
    assert await keys.authenticate(created.secret + "x") is None
    assert await keys.authenticate("") is None


async def test_revoking_here_takes_effect_at_once(ledger_store: Store) -> None:
    keys = key_store(ledger_store, FakeClock())
    created = await keys.create("bob", None)
    assert await keys.authenticate(created.secret) is not None
    assert await keys.revoke(created.key_id) is True
    assert await keys.authenticate(created.secret) is None
    assert await keys.revoke(created.key_id) is False
    assert await keys.revoke("key_missing") is False
    assert await keys.list() == []
    (revoked,) = await keys.list(include_revoked=True)
    assert revoked.revoked_at is not None and not revoked.active


async def test_revocation_elsewhere_is_seen_after_the_ttl(ledger_store: Store) -> None:
    clock = FakeClock()
    keys = key_store(ledger_store, clock)
    created = await keys.create("carol", "web")
    assert await keys.authenticate(created.secret) is not None
    await ledger_store.revoke_key(created.key_id, utcnow())  # another replica revokes it
    clock.now += 4.9
    assert await keys.authenticate(created.secret) is not None  # still trusted from cache
    clock.now += 0.2
    assert await keys.authenticate(created.secret) is None


async def test_unknown_keys_are_cached_briefly(ledger_store: Store) -> None:
    clock = FakeClock()
    keys = key_store(ledger_store, clock)
    secret = new_key_secret()
    assert await keys.authenticate(secret) is None
    key = VirtualKey("key_late", secret[:8], "dave", None, None, utcnow())
    await ledger_store.create_key(key, hash_key(secret))  # the key appears in the database
    assert await keys.authenticate(secret) is None  # the negative answer is still cached
    clock.now += 1.1
    principal = await keys.authenticate(secret)
    assert principal is not None and principal.key_id == "key_late"


async def test_cache_size_is_bounded(ledger_store: Store) -> None:
    keys = key_store(ledger_store, FakeClock(), max_cache_entries=2)
    secrets = [(await keys.create(f"user{i}", None)).secret for i in range(3)]
    for secret in secrets:
        assert await keys.authenticate(secret) is not None
    assert keys.cached_entries == 2
    assert await keys.authenticate(secrets[0]) is not None  # evicted, looked up again
