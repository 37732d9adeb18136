"""Admin API for budgets: list, create / change, delete, and how much of each is used.

    GET    /admin/budgets                 config + runtime rules, each with its source
    PUT    /admin/budgets/{name}          body: a BudgetRule without name → the stored rule
    DELETE /admin/budgets/{name}          runtime rules only (config rules live in the file)
    GET    /admin/budgets/status?user=alice[&team=…&key=…&feature=…&env=…&model=…]

Writes go to the ledger database, which every replica reads on an interval
(``policy.budget_refresh_s``); this replica re-reads it at once, so the change applies to the
very next request here. Money is exact decimal text in and out, never a float.
"""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import parse_qsl

from costwarden.errors import Conflict, InvalidRequest, MethodNotAllowed, NotFound
from costwarden.gateway.asgi import Receive, Scope, parse_json_object, read_body
from costwarden.gateway.services import Services
from costwarden.policy.config import BudgetDimension, BudgetRule
from costwarden.policy.runtime import check_budget_name, runtime_rule

_BODY_LIMIT = 16 * 1024
_DIMENSIONS = frozenset(get_args(BudgetDimension))


class BudgetAdmin:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def handle(
        self, method: str, parts: list[str], scope: Scope, receive: Receive
    ) -> tuple[int, Any]:
        """``parts``: the path after ``/admin/budgets``, split on ``/``."""
        if not parts:
            if method != "GET":
                raise MethodNotAllowed(f"{method} is not allowed on /admin/budgets")
            return 200, {"data": await self._list()}
        # GET on a name has no meaning of its own, so "status" cannot clash with a budget name.
        if parts == ["status"] and method == "GET":
            return 200, await self._status(scope)
        if len(parts) != 1:
            raise NotFound(f"no admin route {method} {scope['path']}")
        name = parts[0]
        if method == "PUT":
            return 200, await self._put(name, scope, receive)
        if method == "DELETE":
            return 200, await self._delete(name)
        raise MethodNotAllowed(f"{method} is not allowed on /admin/budgets/{{name}}")

    async def _list(self) -> list[dict[str, Any]]:
        # Runtime rules straight from the database: the listing shows what every replica
        # converges to, even between two refreshes.
        runtime = await self._s.ledger.store.list_budget_rules()
        runtime_names = {rule.name for rule in runtime}
        listed = [
            {
                **_public(rule, "config"),
                "overridden": rule.name is not None and rule.name in runtime_names,
            }
            for rule in self._s.policy.config.all_budgets()
        ]
        return listed + [_public(rule, "runtime") for rule in runtime]

    async def _put(self, name: str, scope: Scope, receive: Receive) -> dict[str, Any]:
        body = parse_json_object(await read_body(scope, receive, _BODY_LIMIT))
        try:
            rule = runtime_rule(name, body)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        await self._s.ledger.store.upsert_budget_rule(rule)
        await self._s.runtime_budgets.refresh_now()
        return _public(rule, "runtime")

    async def _delete(self, name: str) -> dict[str, Any]:
        try:
            check_budget_name(name)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if await self._s.ledger.store.delete_budget_rule(name):
            await self._s.runtime_budgets.refresh_now()
            restored = any(rule.name == name for rule in self._s.policy.config.all_budgets())
            return {"name": name, "deleted": True, "config_rule_applies_again": restored}
        if any(rule.name == name for rule in self._s.policy.config.all_budgets()):
            raise Conflict(
                f"budget {name!r} comes from the config file and cannot be deleted here; "
                "remove it from the config (or PUT a runtime budget of that name to override it)"
            )
        raise NotFound(f"no budget named {name!r}")

    async def _status(self, scope: Scope) -> dict[str, Any]:
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        unknown = sorted({key for key, _ in query} - _DIMENSIONS)
        if unknown:
            raise InvalidRequest(
                f"unknown budget dimension(s) {unknown}; choose from {sorted(_DIMENSIONS)}"
            )
        values = {key: value for key, value in query if value}
        statuses = await self._s.policy.budget_status(values)
        return {"dimensions": values, "data": [status.to_dict() for status in statuses]}


def _public(rule: BudgetRule, source: str) -> dict[str, Any]:
    """A rule as JSON (limit as exact decimal text) with where it comes from."""
    return {**rule.model_dump(mode="json"), "label": rule.label(), "source": source}
