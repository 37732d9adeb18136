"""What the Redis backend's scripts read and answer: plans as JSON, replies as flat arrays.

A plan is encoded on every admission, so the JSON of the parts a caller's requests share (its
budget counters, rate buckets, session and velocity checks: compiled once and shared) is made
once per part and kept, keyed by the part's identity; a request's own values (lease, clock,
amount, token charge, fingerprint) are spliced in. Replies of the usual case (admitted) are
decoded without converting every field, and key names are looked up, not re-decoded.
The JSON is byte for byte what ``orjson.dumps`` of the plan's document would give; the
scripts' module docstring says what each field is.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import orjson

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
_Part = ScopeKey | RateBucket | SessionCheck | VelocityCheck


class Wire:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        # id(part) -> (part, its JSON pieces): the part is kept so that its id is not reused
        self._parts: dict[int, tuple[_Part, tuple[bytes, bytes]]] = {}
        self._names: dict[bytes, str] = {}  # prefixed key in a reply -> key without prefix

    def plan(self, plan: AdmissionPlan) -> bytes:
        """The plan's JSON, as the admission script reads it."""
        out = [
            b'{"lease":',
            orjson.dumps(plan.lease_id),
            b',"now":',
            orjson.dumps(plan.now),
            b',"exp":',
            orjson.dumps(plan.expires_at),
            b',"amt":',
            b"%d" % plan.amount_units,
            b',"tent":1,"scopes":[' if plan.tentative else b',"tent":0,"scopes":[',
            b",".join([self._piece(scope)[0] for scope in plan.scopes]),
            b'],"rates":[',
        ]
        charges = []
        for bucket in plan.rates:
            head, tail = self._piece(bucket)
            charges.append(b"%b%d%b" % (head, bucket.charge(plan.tokens), tail))
        out += (b",".join(charges), b"]")
        session = plan.session
        if session is not None:
            head, tail = self._piece(session)
            fingerprint = b'""'
            if plan.fingerprint is not None and session.loop_repeat_k is not None:
                fingerprint = orjson.dumps(f"{self._prefix}{session.key}:fp:{plan.fingerprint}")
            out += (b',"sess":', head, fingerprint, tail)
        if plan.velocity is not None:
            out += (b',"vel":', self._piece(plan.velocity)[0])
        out.append(b"}")
        return b"".join(out)

    def _piece(self, part: _Part) -> tuple[bytes, bytes]:
        cached = self._parts.get(id(part))
        if cached is not None:
            return cached[1]
        if len(self._parts) >= _CACHE_LIMIT:
            self._parts.clear()
        pieces = self._encode_part(part)
        self._parts[id(part)] = (part, pieces)
        return pieces

    def _encode_part(self, part: _Part) -> tuple[bytes, bytes]:
        key = self._prefix + part.key
        if isinstance(part, ScopeKey):
            scope = [key, part.cap_units, part.expires_at or 0, part.report_from_units]
            return orjson.dumps(scope), b""
        if isinstance(part, RateBucket):
            # The charge goes between: a token bucket's is each request's own.
            head = orjson.dumps([key, part.kind, part.limit])[:-1] + b","
            return head, b"," + orjson.dumps(part.window_s) + b"]"
        if isinstance(part, SessionCheck):
            head = b'{"k":%b,"max":%d,"fp":' % (orjson.dumps(key), part.max_steps or 0)
            rest = {
                "kk": part.loop_repeat_k or 0,
                "win": part.loop_window_s,
                "trip": part.trip_seconds,
                "ttl": part.idle_ttl_s,
            }
            return head, b"," + orjson.dumps(rest)[1:]
        velocity = {
            "k": key,
            "thr": part.threshold_units,
            "cool": part.cooldown_s,
            "probes": part.probe_requests,
            "ttl": part.ttl_s,
        }
        return orjson.dumps(velocity), b""

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
        """The admission script's reply (see its module docstring for the fields)."""
        name = self.name
        rates = tuple(
            RateState(
                key=name(reply[i]),
                kind=cast("Literal['requests', 'tokens']", _text(reply[i + 1])),
                limit=int(reply[i + 2]),
                remaining=int(reply[i + 3]),
                reset_s=float(reply[i + 4]),
            )
            for i in range(11, len(reply), 5)
        )
        transition = BreakerTransition(_text(reply[10])) if reply[10] else None
        if reply[0] in (b"1", "1"):
            return AdmissionOutcome(
                admitted=True, probe=reply[9] in (b"1", "1"), transition=transition, rates=rates
            )
        f = [_text(v) for v in reply[:9]]
        refusal = Refusal(f[1])
        key = name(reply[2])
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
