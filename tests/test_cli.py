"""The costwarden command: keys and reports, run as a real process on a real ledger."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

import yaml

from costwarden.config import LedgerConfig
from costwarden.ledger import Ledger
from costwarden.records import utcnow
from tests.ledger.factory import make_record


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "costwarden", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def write_config(tmp_path: Path) -> tuple[Path, LedgerConfig]:
    ledger = {"sqlite_path": str(tmp_path / "l.db"), "spool_dir": str(tmp_path / "spool")}
    path = tmp_path / "cw.yaml"
    path.write_text(yaml.safe_dump({"ledger": ledger}))
    return path, LedgerConfig(**ledger)


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path)
    created = cli(config, "keys", "create", "--user", "dana", "--team", "finance")
    assert created.returncode == 0
    key_id = created.stdout.split("key id:")[1].split()[0]
    secret = created.stdout.split("key:")[-1].strip()
    assert secret.startswith("cw-") and "shown only now" in created.stderr

    listed = cli(config, "keys", "list")
    assert key_id in listed.stdout and "dana" in listed.stdout
    assert secret not in listed.stdout

    assert cli(config, "keys", "revoke", key_id).returncode == 0
    again = cli(config, "keys", "revoke", "key_does_not_exist")
    assert again.returncode == 1 and "no key" in again.stderr


async def test_report_formats_sum_exactly(tmp_path: Path) -> None:
    config, ledger_config = write_config(tmp_path)
    ledger = await Ledger.open(ledger_config)
    now = utcnow()
    costs = [Decimal("0.000000123"), Decimal("0.0000456"), Decimal("0.00789")]
    for i, cost in enumerate(costs):
        ledger.append(make_record(i, cost=cost, user="erin" if i else "frank", created_at=now))
    await ledger.close()

    as_json = json.loads(
        cli(config, "report", "--by", "user", "--since", "1d", "--format", "json").stdout
    )
    by_user = {row["user"]: Decimal(row["cost"]) for row in as_json}
    assert by_user == {"frank": costs[0], "erin": costs[1] + costs[2]}

    rows = list(
        csv.DictReader(
            io.StringIO(
                cli(config, "report", "--by", "model", "--since", "1d", "--format", "csv").stdout
            )
        )
    )
    assert sum(Decimal(r["cost"]) for r in rows) == sum(costs)

    table = cli(config, "report", "--by", "user", "--since", "1d")
    assert table.returncode == 0 and "erin" in table.stdout and "total" in table.stdout

    bad = cli(config, "report", "--by", "colour")
    assert bad.returncode == 2 and "colour" in bad.stderr


def test_fake_upstream_command_takes_its_own_options() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cli = Path(sys.executable).parent / "costwarden"
    proc = subprocess.Popen([str(cli), "fake-upstream", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        assert f"listening on http://127.0.0.1:{port}" in proc.stdout.readline()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (localhost)
            assert json.loads(resp.read())["usage"]["prompt_tokens"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
