"""The page around every dashboard view: header, navigation, range controls, login form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from costwarden.dashboard.markup import attr, esc, url
from costwarden.dashboard.params import DEFAULT_GRAIN, HOURLY_RANGES, RANGES, STACKS, Window

BASE = "/dashboard"
_ACTIVE = ' class="active"'
CSS_PATH = f"{BASE}/static/dashboard.css"
NAV: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("user", "Users"),
    ("team", "Teams"),
    ("feature", "Features"),
    ("env", "Environments"),
    ("model", "Models"),
    ("budgets", "Budgets"),
    ("events", "Events"),
)


def nav_href(name: str) -> str:
    if name == "overview":
        return BASE
    if name in ("budgets", "events"):
        return f"{BASE}/{name}"
    return f"{BASE}/breakdown/{name}"


def _head(title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · costwarden</title>"
        f'<link rel="stylesheet" href={attr(CSS_PATH)}></head>'
    )


def page(title: str, body: str, *, active: str, as_of: datetime) -> str:
    """A whole dashboard page; ``body`` is HTML built by the page modules."""
    links = "".join(
        f"<a href={attr(nav_href(name))}{_ACTIVE if name == active else ''}>{esc(text)}</a>"
        for name, text in NAV
    )
    logout = (
        f'<form method="post" action="{BASE}/logout"><button type="submit" id="logout">'
        "Log out</button></form>"
    )
    stamp = as_of.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"{_head(title)}<body><header><span class=\"brand\">costwarden</span>"
        f"<nav>{links}</nav>{logout}</header><main><h1>{esc(title)}</h1>"
        f'<div class="asof" id="as-of" data-as-of={attr(as_of.isoformat())}>As of {esc(stamp)}; '
        "totals come from the rollups, refreshed about every 30 s.</div>"
        f"{body}</main></body></html>"
    )


def _choice(label: str, href: str, on: bool) -> str:
    if on:
        return f'<span class="on">{esc(label)}</span>'
    return f"<a href={attr(href)}>{esc(label)}</a>"


def controls(
    path: str,
    params: Mapping[str, str],
    window: Window,
    *,
    stacks: Sequence[str] = STACKS,
    stack: str | None = None,
) -> str:
    """Range, grain (and stack) switches that keep the page's other parameters."""

    def href(**change: str) -> str:
        return url(path, {**params, **change})

    ranges = "".join(
        _choice(name, href(range=name, grain=DEFAULT_GRAIN[name]), name == window.range_name)
        for name in RANGES
    )
    offered = ("hour", "day") if window.range_name in HOURLY_RANGES else ("day",)
    grains = "".join(_choice(f"by {g}", href(grain=g), g == window.grain) for g in offered)
    stacking = ""
    if stack is not None:
        stacking = "".join(_choice(f"stack by {s}", href(stack=s), s == stack) for s in stacks)
    return f'<div class="controls">{ranges} · {grains}{" · " + stacking if stacking else ""}</div>'


def login_page(*, error: str | None, next_path: str, enabled: bool) -> str:
    if not enabled:
        body = (
            '<div class="login"><h1>Dashboard disabled</h1><p id="disabled">The dashboard logs '
            "in with the admin key, and no admin key is set on this gateway.</p></div>"
        )
        return f"{_head('Dashboard disabled')}<body>{body}</body></html>"
    problem = f'<p class="error" id="login-error">{esc(error)}</p>' if error else ""
    body = (
        '<div class="login"><h1>costwarden</h1><p>Log in with the admin key.</p>'
        f'{problem}<form method="post" action="{BASE}/login">'
        f'<input type="hidden" name="next" value={attr(next_path)}>'
        '<label for="key">Admin key</label>'
        '<input type="password" id="key" name="key" autocomplete="current-password" autofocus>'
        '<button type="submit" id="login">Log in</button></form></div>'
    )
    return f"{_head('Log in')}<body>{body}</body></html>"


def message_page(title: str, text: str) -> str:
    return f"{_head(title)}<body><main><h1>{esc(title)}</h1><p>{esc(text)}</p></main></body></html>"
