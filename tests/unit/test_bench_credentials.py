"""The bench's one place for credentials (bench/stack.py): what it builds reaches every
request the load generators send."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from bench import api_load
from bench.stack import Api, request_headers

TOKEN = {"Authorization": "Bearer a.b.c"}


def test_without_credentials_the_bench_sends_json() -> None:
    assert request_headers(None) == {"Content-Type": "application/json"}
    assert request_headers("a.b.c") == {**request_headers(None), **TOKEN}


def test_vegeta_targets_carry_every_header(tmp_path: Path) -> None:
    api = Api("http://127.0.0.1:1", {**request_headers(None), **TOKEN})
    path = tmp_path / "targets.jsonl"
    api_load._targets(path, api, 3, "run-x")
    targets = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(targets) == 3
    for target in targets:
        assert target["url"] == "http://127.0.0.1:1/api/v1/orders"
        assert target["header"]["Authorization"] == ["Bearer a.b.c"]
        assert target["header"]["Content-Type"] == ["application/json"]
        assert json.loads(base64.b64decode(target["body"]))["metadata"]["run"] == "run-x"


def test_wrk_gets_every_header_as_a_script_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(
        label: str, command: list[str], seconds: float
    ) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        line = (
            'WRK_RESULT {"requests": 1, "duration_us": 1000000, "errors": {}, '
            '"statuses": {"201": 1}, "latency_us": {"p50": 1, "p95": 1, "p99": 1, "max": 1}}'
        )
        return subprocess.CompletedProcess(command, 0, line, "")

    monkeypatch.setattr(api_load, "run_timed", fake_run)
    api = Api("http://127.0.0.1:1", {**request_headers(None), **TOKEN})
    result = api_load.closed_loop(api_load.Tools("wrk", "vegeta"), api, 2, 1, "run-y")
    assert result.ok == 1
    command = seen[0]
    arguments = command[command.index("--") + 1 :]
    assert arguments == ["run-y", "Content-Type: application/json", "Authorization: Bearer a.b.c"]
