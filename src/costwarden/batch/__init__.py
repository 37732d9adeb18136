"""Deferred and batch execution: a durable queue of requests, workers that send them, and a
ledger record per item at the price actually paid.

    queue.py / sqlite_queue.py / postgres_queue.py   the queue (jobs, items, leases)
    worker.py          the worker loop: claims, heartbeats, SIGTERM drain, ledger catch-up
    direct.py          packed concurrency against any configured OpenAI-compatible endpoint
    batch_api.py       OpenAI's Batch API (files + batches), priced at the batch rate
    submit.py          JSONL submission and the results file (OpenAI batch output format)
    gateway_route.py   ``x-costwarden-priority: batch`` requests and their poll endpoint

See docs/batch.md. Nothing here is imported by ``costwarden.config`` but ``batch.config``.
"""
