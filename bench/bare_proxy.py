"""The yardstick: the least a Python LLM proxy can do — forward the body, return the answer.

    python bench/bare_proxy.py UPSTREAM_BASE PORT

No auth, no pricing, no ledger: uvicorn (httptools, uvloop) + one aiohttp session + orjson to
read the model name. bench_gateway.py runs it beside costwarden so the cost of costwarden's
pipeline is measured against what any Python proxy pays.
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import orjson
import uvicorn


class BareProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        orjson.loads(body)  # a proxy must at least read the model
        assert self.session is not None
        async with self.session.post(
            self.upstream + scope["path"], data=body, headers={"content-type": "application/json"}
        ) as resp:
            payload = await resp.read()
            status = resp.status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(
        BareProxy(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
