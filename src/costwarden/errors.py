"""One error hierarchy for everything the gateway refuses or fails at.

Every error a client can see is a ``CostwardenError`` subclass. Each class fixes the HTTP
status, the OpenAI error ``type`` and a stable ``code``; callers match on the class, never on
the message text. ``to_openai()`` / ``to_anthropic()`` render the wire bodies.

    CostwardenError                      500 api_error          (our bug; never for bad input)
    ├── InvalidRequest                   400 invalid_request_error
    │   ├── MalformedJSON                400   code=malformed_json
    │   ├── UnknownModel                 400   code=model_not_found
    │   └── PayloadTooLarge              413   code=payload_too_large
    ├── NotFound                         404 not_found_error   (unknown route)
    ├── MethodNotAllowed                 405 invalid_request_error
    ├── Conflict                         409 invalid_request_error (clashes with current state)
    ├── AuthenticationError              401 authentication_error
    ├── PermissionDenied                 403 permission_error
    ├── PolicyRejection                  429 rate_limit_error   (admission refused; see policy/)
    │   ├── RateLimited                  429   code=rate_limit_exceeded
    │   ├── BudgetExceeded               402/429 code=budget_exceeded
    │   └── BreakerOpen                  429   code=circuit_breaker_open
    ├── UpstreamError                    <upstream status>      (upstream answered an error)
    ├── UpstreamUnavailable              502 api_error          (no endpoint reachable)
    │   └── UpstreamMalformed            502 api_error          (a 2xx that is not JSON)
    ├── UpstreamTimeout                  504 timeout_error
    ├── LedgerUnavailable                503 api_error          (cannot record: refuse)
    └── CountersUnavailable              503 api_error          (cannot check a budget: refuse)
"""

from __future__ import annotations

from typing import Any, ClassVar


class CostwardenError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: ClassVar[str] = "internal_error"
    anthropic_type: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return self.status

    def to_openai(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        if self.details:
            err["costwarden"] = self.details
        return {"error": err}

    def to_anthropic(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}


class InvalidRequest(CostwardenError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    anthropic_type = "invalid_request_error"


class MalformedJSON(InvalidRequest):
    code = "malformed_json"


class UnknownModel(InvalidRequest):
    code = "model_not_found"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"
    anthropic_type = "request_too_large"


class NotFound(CostwardenError):
    status = 404
    type = "not_found_error"
    code = "not_found"
    anthropic_type = "not_found_error"


class MethodNotAllowed(CostwardenError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"
    anthropic_type = "invalid_request_error"


class Conflict(CostwardenError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"
    anthropic_type = "invalid_request_error"


class AuthenticationError(CostwardenError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    anthropic_type = "authentication_error"


class PermissionDenied(CostwardenError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    anthropic_type = "permission_error"


class PolicyRejection(CostwardenError):
    status = 429
    type = "rate_limit_error"
    code = "policy_rejection"
    anthropic_type = "rate_limit_error"


class RateLimited(PolicyRejection):
    code = "rate_limit_exceeded"


class BudgetExceeded(PolicyRejection):
    code = "budget_exceeded"


class BreakerOpen(PolicyRejection):
    code = "circuit_breaker_open"


class UpstreamError(CostwardenError):
    """The upstream answered with an error; its status and body are passed through."""

    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int, body: bytes = b"", **kw: Any):
        super().__init__(message, **kw)
        self.upstream_status = upstream_status
        self.body = body

    @property
    def http_status(self) -> int:
        return self.upstream_status


class UpstreamUnavailable(CostwardenError):
    status = 502
    type = "api_error"
    code = "upstream_unavailable"
    anthropic_type = "api_error"


class UpstreamMalformed(UpstreamUnavailable):
    """The upstream answered 2xx with a body that is not a JSON object: passing it on would
    hand the client a "success" its SDK cannot read."""

    code = "upstream_malformed_response"


class UpstreamTimeout(CostwardenError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    anthropic_type = "api_error"


class LedgerUnavailable(CostwardenError):
    status = 503
    type = "api_error"
    code = "ledger_unavailable"
    anthropic_type = "overloaded_error"


class CountersUnavailable(CostwardenError):
    """The shared counters (Redis) cannot be reached, or are being re-seeded after losing
    their data: a hard budget cannot be checked, so the request is refused rather than let
    through unchecked (``state.on_unavailable``, docs/reliability.md). Retryable."""

    status = 503
    type = "api_error"
    code = "counters_unavailable"
    anthropic_type = "overloaded_error"


class ConfigError(Exception):
    """Invalid configuration; raised at start-up, never during a request."""
