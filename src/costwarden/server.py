"""Running the gateway under uvicorn, including the simulated ``--demo`` mode."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
import uvloop

from costwarden.config import Settings, load_settings, settings_from_dict
from costwarden.gateway.app import Gateway
from costwarden.keys import KeyStore
from costwarden.ledger import open_store
from costwarden.providers.fake_upstream import FakeUpstream

log = logging.getLogger("costwarden")

DEMO_USER = "demo-user"
DEMO_TEAM = "demo-team"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    config_path: str | None
    host: str | None
    port: int | None
    demo: bool
    log_level: str = "info"


def demo_settings(upstream_base: str, base: Settings | None = None) -> Settings:
    """Three models on the built-in simulated upstream, priced from the real catalog."""
    openai_base = f"{upstream_base}/v1"
    models: list[dict[str, Any]] = [
        {"name": "gpt-4o-mini", "endpoints": [{"id": "sim-openai", "api_base": openai_base}]},
        {
            "name": "gpt-4o",
            "endpoints": [{"id": "sim-openai", "api_base": openai_base}],
            "fallbacks": ["gpt-4o-mini"],
        },
        {
            "name": "claude-sonnet-4",
            "endpoints": [
                {
                    "id": "sim-anthropic",
                    "provider": "anthropic",
                    "api_base": openai_base,
                    "upstream_model": "claude-sonnet-4-20250514",
                }
            ],
        },
        {
            "name": "text-embedding-3-small",
            "endpoints": [{"id": "sim-openai", "api_base": openai_base}],
        },
    ]
    data: dict[str, Any] = {
        "models": models,
        "demo": True,
        "ledger": {"sqlite_path": "costwarden-demo.db", "spool_dir": "var/demo-spool"},
        # Repeat a request with "temperature": 0 to see a hit: cost 0, and what it saved.
        "savings": {"exact_cache": {"enabled": True}},
    }
    if base is not None:
        data["gateway"] = base.gateway.model_dump()
    return settings_from_dict(data)


def load_for_serve(options: ServeOptions) -> Settings:
    path = options.config_path or os.environ.get("COSTWARDEN_CONFIG")
    if path is None and os.path.exists("costwarden.yaml"):
        path = "costwarden.yaml"
    settings = load_settings(path) if path else Settings()
    overrides: dict[str, Any] = {}
    if options.host is not None:
        overrides["host"] = options.host
    if options.port is not None:
        overrides["port"] = options.port
    if overrides:
        gateway = settings.gateway.model_copy(update=overrides)
        settings = settings.model_copy(update={"gateway": gateway})
    return settings


async def _demo_key(settings: Settings) -> str:
    store = await open_store(settings.ledger)
    try:
        await store.migrate()
        keys = KeyStore(store, ttl_s=settings.gateway.key_cache_ttl_s)
        created = await keys.create(user=DEMO_USER, team=DEMO_TEAM, name="demo")
        return created.secret
    finally:
        await store.close()


def _banner(settings: Settings, key: str, upstream: str, admin_key: str) -> str:
    url = f"http://{settings.gateway.host}:{settings.gateway.port}"
    return (
        "\n*** costwarden DEMO: answers come from a SIMULATED upstream "
        f"({upstream}); costs use real catalog prices. ***\n"
        f"Gateway: {url}    demo API key: {key}\n"
        f"Dashboard: {url}/dashboard    admin key: {admin_key}\n"
        "Try:\n"
        f"  curl -s {url}/v1/chat/completions -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}\' -i\n'
        "  .venv/bin/costwarden report --demo --by user,model\n"
    )


async def serve(options: ServeOptions) -> None:
    settings = load_for_serve(options)
    fake: FakeUpstream | None = None
    environ = dict(os.environ)
    if options.demo:
        fake = FakeUpstream()
        upstream = await fake.start("127.0.0.1", 0)
        settings = demo_settings(upstream, settings)
        key = await _demo_key(settings)
        # The demo opens the dashboard too: an admin key for this run unless one is set.
        admin_env = settings.gateway.admin_key_env
        admin_key = environ.setdefault(admin_env, f"cw-admin-{secrets.token_urlsafe(18)}")
        print(_banner(settings, key, upstream, admin_key), file=sys.stderr, flush=True)
    elif not settings.models:
        raise SystemExit(
            "no models configured: pass --config FILE (start from costwarden.example.yaml) "
            "or try `costwarden serve --demo`"
        )
    gateway = Gateway(settings, environ=environ)
    config = uvicorn.Config(
        gateway,
        host=settings.gateway.host,
        port=settings.gateway.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        # The gateway reads no client address, so X-Forwarded-* parsing is wasted per request.
        proxy_headers=False,
        server_header=False,
        log_level=options.log_level,
        timeout_graceful_shutdown=10,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        if fake is not None:
            await fake.stop()


def run(options: ServeOptions) -> None:
    logging.basicConfig(
        level=options.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    # Request handling allocates many short-lived, acyclic objects that reference counting
    # frees; the cyclic collector's default gen-0 threshold (700) made it run every couple of
    # requests (measured: ~15 % of CPU with spend controls on). Start-up objects are frozen out
    # of its scans, and it runs far less often; cycles are still collected.
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
    uvloop.run(serve(options))
