"""Load on `POST /api/v1/orders`: closed loop with wrk, open loop (constant rate) with vegeta.

Every order is the seed README's, for a random customer, tagged `metadata.run` with the run's
label so the end-to-end phase can find its orders in the database.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from app.domain import examples
from bench.stack import Api
from bench.ui import console, run_timed

WRK_SCRIPT = Path(__file__).with_name("wrk_orders.lua")


class LoadResult(msgspec.Struct):
    """One run of the load: what was asked, what came back, and how fast."""

    mode: str  # "closed" (wrk, fixed concurrency) or "open" (vegeta, fixed rate)
    concurrency: int | None
    offered_rate: float | None
    seconds: float
    requests: int
    ok: int  # 201 answers
    errors: dict[str, int]  # status codes other than 201, and transport errors
    throughput: float  # 201 answers per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    send_rate: float | None = None  # open loop: the rate vegeta actually kept up


def order(run: str, customer: uuid.UUID | None = None) -> dict[str, object]:
    """The example order (the seed README's: one item, 3 x 49.99) for a customer."""
    return {
        **examples.request_body(),
        "customer_id": str(customer or uuid.uuid4()),
        "metadata": {"source": "bench", "run": run},
    }


@dataclass(frozen=True)
class Tools:
    wrk: str
    vegeta: str


def closed_loop(
    tools: Tools, api: Api, concurrency: int, seconds: int, run: str, threads: int = 2
) -> LoadResult:
    # The script's arguments: the run's label, then each header as "Name: value".
    headers = [f"{name}: {value}" for name, value in api.headers.items()]
    command = [
        tools.wrk,
        f"-t{min(threads, concurrency)}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        api.orders_url,
        "--",
        run,
        *headers,
    ]
    done = run_timed(f"wrk  c={concurrency:<3} {seconds}s", command, seconds)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    duration = raw["duration_us"] / 1e6
    statuses: dict[str, int] = dict(raw["statuses"])
    ok = statuses.pop("201", 0)
    errors = {**statuses, **{k: v for k, v in raw["errors"].items() if v and k != "status"}}
    latency = raw["latency_us"]
    return LoadResult(
        mode="closed",
        concurrency=concurrency,
        offered_rate=None,
        seconds=round(duration, 2),
        requests=raw["requests"],
        ok=ok,
        errors=errors,
        throughput=round(ok / duration, 1),
        p50_ms=latency["p50"] / 1000,
        p95_ms=latency["p95"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )


def _targets(path: Path, api: Api, count: int, run: str) -> None:
    rng = random.Random(run)
    header = {name: [value] for name, value in api.headers.items()}
    with path.open("w") as out:
        for _ in range(count):
            customer = uuid.UUID(int=rng.getrandbits(128), version=4)
            body = msgspec.json.encode(order(run, customer))
            target = {
                "method": "POST",
                "url": api.orders_url,
                "body": base64.b64encode(body).decode(),
                "header": header,
            }
            out.write(json.dumps(target) + "\n")


def open_loop(
    tools: Tools, api: Api, rate: int, seconds: int, run: str, workdir: Path
) -> tuple[LoadResult, np.ndarray]:
    """Send `rate` orders a second for `seconds`, whatever the answers' pace (open loop).

    vegeta starts each request on schedule, adding workers when all are busy, so a slow
    answer does not delay the next request (no coordinated omission). Returns the result and
    the per-request latencies (ms) of the successful requests.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    targets = workdir / f"{run}.targets.jsonl"
    results = workdir / f"{run}.bin"
    _targets(targets, api, rate * seconds, run)
    command = [
        tools.vegeta,
        "attack",
        "-format=json",
        f"-targets={targets}",
        f"-rate={rate}/1s",
        f"-duration={seconds}s",
        "-timeout=10s",  # a client gives up after 10 s (the API's DB_STATEMENT_TIMEOUT is 10 s too)
        "-workers=16",
        f"-output={results}",
    ]
    done = run_timed(f"vegeta {rate}/s {seconds}s", command, seconds)
    if done.returncode != 0:
        raise RuntimeError(f"vegeta failed ({done.returncode}):\n{done.stderr}")
    encoded = subprocess.run(
        [tools.vegeta, "encode", "--to=csv", str(results)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _summarise_open(encoded, rate, seconds)


def _transport_error(message: str) -> str:
    """vegeta's Go error text, shortened to its kind (the URL and details vary)."""
    if "deadline exceeded" in message or "timeout" in message.lower():
        return "timeout"
    return message.rsplit(": ", 1)[-1][:60] or "error"


def _summarise_open(encoded: str, rate: int, seconds: int) -> tuple[LoadResult, np.ndarray]:
    # CSV columns: timestamp (ns), code, latency (ns), bytes out, bytes in, error, body, ...
    sent: list[int] = []
    latencies: list[float] = []
    ok_latencies: list[float] = []
    errors: dict[str, int] = {}
    for row in csv.reader(io.StringIO(encoded)):
        sent.append(int(row[0]))
        latency_ms = int(row[2]) / 1e6
        latencies.append(latency_ms)
        if row[1] == "201":
            ok_latencies.append(latency_ms)
        else:
            reason = row[1] if row[1] != "0" else _transport_error(row[5])
            errors[reason] = errors.get(reason, 0) + 1
    all_ms = np.array(latencies) if latencies else np.zeros(1)
    span = (max(sent) - min(sent)) / 1e9 if len(sent) > 1 else float(seconds)
    p50, p95, p99 = np.percentile(all_ms, [50, 95, 99])
    result = LoadResult(
        mode="open",
        concurrency=None,
        offered_rate=rate,
        seconds=seconds,
        requests=len(sent),
        ok=len(ok_latencies),
        errors=errors,
        throughput=round(len(ok_latencies) / seconds, 1),
        p50_ms=round(float(p50), 2),
        p95_ms=round(float(p95), 2),
        p99_ms=round(float(p99), 2),
        max_ms=round(float(all_ms.max()), 2),
        send_rate=round((len(sent) - 1) / span, 1) if span > 0 else None,
    )
    if errors:
        console.log(f"[yellow]{rate}/s: {sum(errors.values())} failed requests: {errors}")
    return result, np.array(ok_latencies)
