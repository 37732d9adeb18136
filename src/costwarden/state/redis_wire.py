"""What the Redis backend's scripts read and answer: plans packed with MessagePack, replies
as flat arrays.

MessagePack, not JSON: Redis's Lua unpacks it ~10 % faster (measured with
``bench/redis_cost.py``: script time 171 → 152 µs a request, redis-server's CPU 200 → 180),
mostly because JSON numbers go through ``strtod``; its numbers are exact doubles (every
integer below 2**53, as the counters need). A plan is packed on every admission, so the
pieces of the parts a caller's requests share (its budget counters, rate buckets, session and
velocity checks: compiled once and shared) are packed once per part and kept, keyed by the
part's identity; a request's own values (lease, clock, amount, token charge, fingerprint) are
spliced in. The result is byte for byte ``msgpack.packb`` of the plan's document (tested);
the scripts' module docstring says what each field is. Replies of the usual case (admitted)
are decoded without converting every field, and key names are looked up, not re-decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Literal

from msgpack import Packer, packb

from costwarden.state.base import (
    AdmissionOutcome,
    AdmissionPlan,
    BreakerTransition,
    RateBucket,
    RateState,
    Refusal,
    ScopeKey,
    ScopeSettlement,
    ScopeUsage,
    SessionCheck,
    SettleOutcome,
    VelocityCheck,
    units_to_usd,
)

# Parts and names kept at most: sessions come and go, each with parts of its own.
_CACHE_LIMIT = 20_000
# A rate bucket's kind as a reply gives it -> as RateState names it.
_KINDS: dict[bytes | str, Literal["requests", "tokens"]] = {
    b"requests": "requests", b"tokens": "tokens", "requests": "requests", "tokens": "tokens"
}  # fmt: skip
_Part = ScopeKey | RateBucket | SessionCheck | VelocityCheck

# The plan's field names (and a flag's two values), packed once.
_LEASE, _NOW, _EXP, _AMT = packb("lease"), packb("now"), packb("exp"), packb("amt")
_TENT_0 = packb("tent") + packb(0) + packb("scopes")
_TENT_1 = packb("tent") + packb(1) + packb("scopes")
_RATES, _SESS, _VEL = packb("rates"), packb("sess"), packb("vel")
_DOUBLE = struct.Struct(">d").pack


def _float(x: float) -> bytes:
    """``x`` as MessagePack's float 64, as ``packb`` packs every Python float."""
    return b"\xcb" + _DOUBLE(x)


def _array(n: int) -> bytes:
    """A MessagePack array header for ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    return (b"\xdc" + n.to_bytes(2, "big")) if n < 65536 else (b"\xdd" + n.to_bytes(4, "big"))


def _map(n: int) -> bytes:
    """A MessagePack map header for ``n`` (< 16) entries."""
    return bytes((0x80 | n,))


class Wire:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        # id(part) -> (part, its packed pieces): the part is kept so that its id is not reused
        self._parts: dict[int, tuple[_Part, tuple[bytes, bytes]]] = {}
        self._names: dict[bytes, str] = {}  # prefixed key in a reply -> key without prefix
        # One packer, reused: ``packb`` makes a new one per call (~0.3 µs, a dozen a plan).
        self._pack: Callable[[object], bytes] = Packer().pack

    def plan(self, plan: AdmissionPlan) -> bytes:
        """The plan, packed as the admission script unpacks it."""
        packb = self._pack
        session, velocity = plan.session, plan.velocity
        fields = 7 + (session is not None) + (velocity is not None)
        out = [
            _map(fields),
            _LEASE,
            packb(plan.lease_id),
            _NOW,
            _float(plan.now),
            _EXP,
            _float(plan.expires_at),
            _AMT,
            packb(plan.amount_units),
            _TENT_1 if plan.tentative else _TENT_0,
            _array(len(plan.scopes)),
            *[self._piece(scope)[0] for scope in plan.scopes],
            _RATES,
            _array(len(plan.rates)),
        ]
        for bucket in plan.rates:
            head, tail = self._piece(bucket)
            out += (head, packb(bucket.charge(plan.tokens)), tail)
        if session is not None:
            head, tail = self._piece(session)
            fingerprint = ""
            if plan.fingerprint is not None and session.loop_repeat_k is not None:
                fingerprint = f"{self._prefix}{session.key}:fp:{plan.fingerprint}"
            out += (_SESS, head, packb(fingerprint), tail)
        if velocity is not None:
            out += (_VEL, self._piece(velocity)[0])
        return b"".join(out)

    def _piece(self, part: _Part) -> tuple[bytes, bytes]:
        cached = self._parts.get(id(part))
        if cached is not None:
            return cached[1]
        if len(self._parts) >= _CACHE_LIMIT:
            self._parts.clear()
        pieces = self._pack_part(part)
        self._parts[id(part)] = (part, pieces)
        return pieces

    def _pack_part(self, part: _Part) -> tuple[bytes, bytes]:
        key = self._prefix + part.key
        if isinstance(part, ScopeKey):
            scope = [key, part.cap_units, part.expires_at or 0, part.report_from_units]
            return packb(scope), b""
        if isinstance(part, RateBucket):
            # The charge goes between: a token bucket's is each request's own.
            return _array(5) + packb(key) + packb(part.kind) + packb(part.limit), packb(
                part.window_s
            )
        if isinstance(part, SessionCheck):
            head = _map(7) + packb("k") + packb(key) + packb("max") + packb(part.max_steps or 0)
            rest = {
                "kk": part.loop_repeat_k or 0,
                "win": part.loop_window_s,
                "trip": part.trip_seconds,
                "ttl": part.idle_ttl_s,
            }
            return head + packb("fp"), packb(rest)[1:]  # the map's entries, not its header
        velocity = {
            "k": key,
            "thr": part.threshold_units,
            "cool": part.cooldown_s,
            "probes": part.probe_requests,
            "ttl": part.ttl_s,
        }
        return packb(velocity), b""

    # -- replies ---------------------------------------------------------------------------

    def name(self, raw: bytes | str) -> str:
        """A key as the scripts answer it, without the backend's prefix."""
        if type(raw) is not bytes:
            return str(raw).removeprefix(self._prefix)
        name = self._names.get(raw)
        if name is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            name = self._names[raw] = raw.decode().removeprefix(self._prefix)
        return name

    def admission(self, reply: list[Any]) -> AdmissionOutcome:
        """The admission script's reply (see ``redis_scripts``' docstring for the fields)."""
        if reply[0] in (b"1", "1"):
            return AdmissionOutcome(
                admitted=True,
                probe=reply[1] in (b"1", "1"),
                transition=BreakerTransition(_text(reply[2])) if reply[2] else None,
                rates=self._rates(reply, 3),
            )
        rates = self._rates(reply, 11)
        transition = BreakerTransition(_text(reply[10])) if reply[10] else None
        f = [_text(v) for v in reply[:9]]
        refusal = Refusal(f[1])
        key = self.name(reply[2])
        usage = None
        if refusal is Refusal.BUDGET:
            usage = ScopeUsage(
                key, units_to_usd(int(f[6])), units_to_usd(int(f[4])), units_to_usd(int(f[5]))
            )
        return AdmissionOutcome(
            admitted=False,
            refusal=refusal,
            refused_key=key,
            usage=usage,
            retry_after_s=float(f[3]) if f[3] else None,
            first_refusal=f[7] == "1",
            trip_reason=f[8] or None,
            transition=transition,
            rates=rates,
        )

    def _rates(self, reply: list[Any], start: int) -> tuple[RateState, ...]:
        """The rate buckets' states from ``start`` on: 5 fields each."""
        name = self.name
        kinds = _KINDS
        return tuple(
            RateState(name(r[0]), kinds[r[1]], r[2], r[3], float(r[4]))
            for r in (reply[i : i + 5] for i in range(start, len(reply), 5))
        )

    def settlement(self, reply: list[Any]) -> SettleOutcome:
        """settle_one's reply: {0}, or {1, then key, cap, before, after per scope}."""
        if int(reply[0]) == 0:
            return SettleOutcome(applied=False)
        scopes = tuple(
            ScopeSettlement(
                key=self.name(reply[i]),
                cap_units=int(reply[i + 1]),
                spent_before_units=int(reply[i + 2]),
                spent_after_units=int(reply[i + 3]),
            )
            for i in range(1, len(reply), 4)
        )
        return SettleOutcome(applied=True, scopes=scopes)


def _text(value: bytes | str | int) -> str:
    return value.decode() if type(value) is bytes else str(value)
