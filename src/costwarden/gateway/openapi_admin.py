"""The admin API's part of ``/openapi.json`` (routes in ``admin.py`` and ``admin_budgets.py``).

Every admin route needs the admin key as a bearer token and refuses with OpenAI-shaped errors.
Money is exact decimal text both ways; the budget body mirrors ``policy.config.BudgetRule``,
which forbids unknown fields.
"""

from __future__ import annotations

from typing import Any, get_args

from costwarden.gateway.admin import GROUPS
from costwarden.gateway.openapi_schemas import REF, Schema, error_responses, json_response
from costwarden.policy.config import MAX_LIMIT_USD, BudgetDimension, Period

_DIMENSIONS = tuple(sorted(get_args(BudgetDimension)))
_BUDGET_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$"  # policy.runtime.check_budget_name


def _nullable_text() -> Schema:
    return {"type": ["string", "null"]}


def _budget_name() -> Schema:
    return {"type": "string", "pattern": _BUDGET_NAME_PATTERN}


def admin_schemas() -> dict[str, Schema]:
    return {
        "NewKey": {
            "type": "object",
            "required": ["user"],
            "properties": {
                "user": {"type": "string", "minLength": 1},
                "team": _nullable_text(),
                "name": _nullable_text(),
            },
        },
        "Key": {
            "type": "object",
            "required": ["id", "prefix", "user", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "prefix": {"type": "string"},
                "user": {"type": "string"},
                "team": _nullable_text(),
                "name": _nullable_text(),
                "created_at": {"type": "string"},
                "revoked_at": _nullable_text(),
                "key": {"type": "string", "description": "the secret; only when created"},
            },
        },
        "KeyList": _list_of({"$ref": REF + "Key"}),
        "Spend": {
            "type": "object",
            "required": ["since", "until", "group_by", "data"],
            "properties": {"data": {"type": "array", "items": {"type": "object"}}},
        },
        "BudgetRule": _budget_rule(),
        "Budget": {"type": "object", "required": ["limit_usd", "period", "scope", "source"]},
        "BudgetList": _list_of({"$ref": REF + "Budget"}),
        "BudgetStatus": {"type": "object", "required": ["dimensions", "data"]},
    }


def _list_of(item: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": item}},
    }


def _budget_rule() -> Schema:
    scope = {
        "type": "object",
        "propertyNames": {"enum": list(_DIMENSIONS)},
        "additionalProperties": {"type": "string", "minLength": 1},
        "description": "dimension → value ('*': each value its own counter); {} is global",
    }
    return {
        "type": "object",
        "required": ["limit_usd"],
        "properties": {
            "name": {**_budget_name(), "description": "if given, the name in the path"},
            "scope": {"anyOf": [scope, {"const": "global"}, {"type": "null"}]},
            "period": {"enum": list(get_args(Period)), "default": "month"},
            "limit_usd": {
                "type": "string",
                "pattern": r"^[0-9]+(\.[0-9]+)?$",
                "description": f"exact decimal text, above 0 and at most {MAX_LIMIT_USD}",
            },
            "soft_thresholds": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
        "additionalProperties": False,
    }


def _op(operation_id: str, ok: Schema, *errors: int, **extra: Any) -> Schema:
    status = extra.pop("status", "200")
    responses = {status: json_response(ok), **error_responses("OpenAIError", 401, 403, *errors)}
    return {
        "operationId": operation_id,
        "security": [{"adminKey": []}],
        **extra,
        "responses": responses,
    }


def _path_param(name: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def _json_body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF + schema}}}}


def admin_paths() -> dict[str, Schema]:
    ok: Schema = {"type": "object"}
    spend_query = [
        _query("group_by", f"comma-separated, of {', '.join(sorted(GROUPS))}"),
        _query("since", "30m, 24h, 7d, 2w, or an ISO date / date-time (UTC); default 30d"),
        _query("until", "exclusive end, same forms; default now"),
        *(_query(group, f"only rows with this {group}") for group in sorted(GROUPS)),
    ]
    budget = _path_param("name", _budget_name())
    return {
        "/admin/keys": {
            "post": _op(
                "createKey",
                {"$ref": REF + "Key"},
                400,
                413,
                status="201",
                requestBody=_json_body("NewKey"),
            ),
            "get": _op("listKeys", {"$ref": REF + "KeyList"}),
        },
        "/admin/keys/{key_id}": {
            "delete": _op("revokeKey", ok, 404, parameters=[_path_param("key_id")]),
        },
        "/admin/requests/{request_id}": {
            "get": _op("getRequest", ok, 404, parameters=[_path_param("request_id")]),
        },
        "/admin/spend": {
            "get": _op("spend", {"$ref": REF + "Spend"}, 400, parameters=spend_query),
        },
        "/admin/budgets": {"get": _op("listBudgets", {"$ref": REF + "BudgetList"})},
        "/admin/budgets/status": {
            "get": _op(
                "budgetStatus",
                {"$ref": REF + "BudgetStatus"},
                400,
                parameters=[_query(d, f"the request's {d}") for d in _DIMENSIONS],
            ),
        },
        "/admin/budgets/{name}": {
            "put": _op(
                "putBudget",
                {"$ref": REF + "Budget"},
                400,
                413,
                parameters=[budget],
                requestBody=_json_body("BudgetRule"),
            ),
            "delete": _op("deleteBudget", ok, 400, 404, 409, parameters=[budget]),
        },
    }
