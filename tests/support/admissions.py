"""A caller and a plain admission request, for tests that only vary the worst-case cost."""

from __future__ import annotations

from decimal import Decimal

from costwarden.policy.engine import AdmissionRequest
from costwarden.records import Principal, Tags
from costwarden.state.base import usd_to_units_up

ALICE = Principal(key_id="k-alice", user="alice", team="ml")


def admission_request(cost: str = "0.10", principal: Principal = ALICE) -> AdmissionRequest:
    """A gpt-4o request of 100 prompt and at most 100 output tokens, costing up to ``cost``."""
    return AdmissionRequest(
        principal=principal,
        tags=Tags(),
        model="gpt-4o",
        estimated_input_tokens=100,
        max_output_tokens=100,
        worst_case_units=usd_to_units_up(Decimal(cost)),
    )
