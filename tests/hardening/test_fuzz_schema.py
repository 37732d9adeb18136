"""Schema-driven fuzzing: schemathesis generates requests from the gateway's own
``/openapi.json`` and sends them to a live gateway with the fake upstream behind it.

Both generation modes run: requests the schema allows and requests it forbids (wrong types,
missing fields, out-of-range numbers). Every answer must be a non-5xx, conform to the status
codes, content types and body schemas the document declares, and — when it is a refusal —
carry the error body of the route's protocol: Anthropic's on ``/v1/messages``, OpenAI's
elsewhere. Runs are seeded and deterministic, so a failure reproduces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from costwarden.gateway.openapi import build_openapi
from tests.hardening.protocol import assert_refusal_shape
from tests.hardening.tally import Tally
from tests.support.threaded_gateway import ADMIN_KEY, ThreadedGateway, hardened_settings

MAX_EXAMPLES = 25  # per operation and phase: ~1000 requests, well under a minute on 2 cores
SEED = 16
# The key schemathesis sends, chosen here because the schema (and its auth) is built at import.
FUZZ_KEY = "cw-fuzz" + "0" * 39
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]


def _schema() -> Any:
    """The document the fuzzed gateway serves (checked by ``test_served_document``); model
    names come from the settings, never from the upstream address or the file paths."""
    document = build_openapi(hardened_settings(Path("unused"), "http://upstream.invalid/v1"))
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
            "phases": {"stateful": {"enabled": False}},
            "auth": {
                "openapi": {
                    "virtualKey": {"bearer": FUZZ_KEY},
                    "virtualKeyHeader": {"api_key": FUZZ_KEY},
                    "adminKey": {"bearer": ADMIN_KEY},
                }
            },
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


schema = _schema()


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(tmp_path_factory.mktemp("fuzz")).start()
    gateway.add_key(FUZZ_KEY, "fuzzer")
    yield gateway
    gateway.stop()


def test_served_document_is_the_fuzzed_one(fuzz_gateway: ThreadedGateway) -> None:
    response = requests.get(f"{fuzz_gateway.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == schema.raw_schema


@schema.parametrize()
def test_fuzzed_requests_are_answered_within_the_contract(
    case: Any, fuzz_gateway: ThreadedGateway, hostile_tally: Tally
) -> None:
    response = case.call(base_url=fuzz_gateway.url, timeout=30)
    hostile_tally.add(case.operation.label, response.status_code)
    case.validate_response(response, checks=_CHECKS)
    if response.status_code >= 400 and case.path != "/metrics":
        assert_refusal_shape(case.path, response.status_code, response.content)
