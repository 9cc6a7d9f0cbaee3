"""`python -m bench` (`make bench`): measure the pipeline, print the figures, write the results.

Starts PostgreSQL and Kafka the way `make dev` does (or uses DATABASE_URL / KAFKA_BROKERS:
point those at scratch servers, the bench writes orders and events), runs every phase, stops
everything it started (Ctrl-C too), then writes bench/results/latest.{json,md,png}.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from bench import plot, report, stack, tools
from bench.api_load import Tools
from bench.run import Settings, run
from bench.ui import console, phase

RESULTS = Path(__file__).with_name("results")
NOISE_CORES = 0.2  # other processes' average use during a phase, above which we warn


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    defaults = Settings()
    parser.add_argument(
        "--concurrency",
        type=_numbers,
        default=defaults.concurrency,
        help="closed-loop clients, comma-separated (default 8,32,64)",
    )
    parser.add_argument(
        "--rates",
        type=_numbers,
        default=defaults.rates,
        help="open-loop orders per second, comma-separated (default 100,200,400)",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=defaults.seconds,
        help="length of each closed-loop, pgbench and open-loop run (default %(default)s)",
    )
    parser.add_argument(
        "--e2e-rate",
        type=int,
        default=defaults.e2e_rate,
        help="the open-loop rate whose end-to-end latency is held to the target (%(default)s)",
    )
    parser.add_argument(
        "--e2e-seconds",
        type=int,
        default=defaults.e2e_seconds,
        help="length of that run (default %(default)s)",
    )
    parser.add_argument(
        "--drain-rows",
        type=int,
        default=defaults.drain_rows,
        help="outbox backlog the relay drains (default %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs and a small backlog: a smoke test"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also sample the API and the relay with py-spy (stacks in .state/bench/profiles)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where latest.* go")
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw latest.png from latest.json and stop"
    )
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    if args.quick:
        return Settings(
            concurrency=(8, 32),
            rates=(100, 200),
            seconds=4,
            e2e_rate=args.e2e_rate,
            e2e_seconds=6,
            drain_rows=10_000,
            settle_timeout=30,
            profile=args.profile,
        )
    return Settings(
        concurrency=args.concurrency,
        rates=args.rates,
        seconds=args.seconds,
        e2e_rate=args.e2e_rate,
        e2e_seconds=args.e2e_seconds,
        drain_rows=args.drain_rows,
        profile=args.profile,
    )


def _terminate(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    if args.plot_only:
        results = report.load(args.output / "latest.json")
        console.log(f"wrote {plot.draw(results, args.output / 'latest.png')}")
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    settings = _settings(args)
    started = time.monotonic()
    phase("Tools")
    try:
        load = Tools(wrk=tools.wrk(console), vegeta=tools.vegeta(console))
        pgbench = tools.pgbench()
        py_spy = tools.py_spy() if settings.profile else None
    except tools.MissingTool as exc:
        console.print(f"[red]{exc}")
        return 2
    console.log(f"wrk: {load.wrk} · vegeta: {load.vegeta} · pgbench: {pgbench}")
    phase("Starting PostgreSQL, Kafka and the API")
    try:
        with stack.running() as system:
            results = run(system, settings, load, py_spy)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: everything the bench started has been stopped")
        return 130
    phase("Results")
    path = report.write(results, args.output)
    picture = plot.draw(results, args.output / "latest.png")
    for line in report.describe(results):
        console.print(line)
    report.render(console, results)
    busiest = max((cores.get("other", 0.0) for cores in results.cpu_cores.values()), default=0.0)
    if busiest > NOISE_CORES:
        console.print(
            f"[yellow]Other work on this machine used up to {busiest:.2f} cores during a phase "
            "(column `other`): the figures are lower than a quiet machine gives."
        )
    for summary in results.profiles:
        console.print(
            f"[bold]py-spy, {summary.process}[/]: {summary.samples} samples, GIL held "
            f"{summary.gil_busy_percent:.0f}% of the time; by library: "
            + ", ".join(f"{s.what} {s.percent:.0f}%" for s in summary.by_package[:6])
        )
        for share in summary.self_time[:10]:
            console.print(f"  {share.percent:5.1f}%  {share.what}")
    console.log(f"wrote {path}, {path.with_suffix('.md')}, {picture}")
    console.log(f"the bench took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
