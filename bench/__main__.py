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
from bench.arguments import fraction, numbers, positive
from bench.capacity import Plan
from bench.results import Results
from bench.run import Settings, run
from bench.ui import console, phase

RESULTS = Path(__file__).with_name("results")
NOISE_CORES = 0.2  # other processes' average use during a phase, above which we warn


def _search_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
    add = parser.add_argument
    add(
        "--start-rate",
        type=positive,
        default=defaults.search.start,
        help="orders/s of the capacity search's first step (default %(default)s)",
    )
    add(
        "--step-seconds",
        type=positive,
        default=defaults.step_seconds,
        help="length of each step of the capacity search (default %(default)s)",
    )
    add(
        "--warm-up-seconds",
        type=positive,
        default=defaults.warm_up_seconds,
        help="orders at half the first step's rate before the search (default %(default)s)",
    )
    add(
        "--max-steps",
        type=positive,
        default=defaults.search.max_steps,
        help="at most this many steps in the capacity search (default %(default)s)",
    )
    add(
        "--cpu-fraction",
        type=fraction,
        default=defaults.cpu_fraction,
        help="CPU per order is measured at this fraction of capacity (default %(default)s)",
    )
    add(
        "--cpu-seconds",
        type=positive,
        default=defaults.cpu_seconds,
        help="length of that run (default %(default)s)",
    )


def _load_arguments(parser: argparse.ArgumentParser, defaults: Settings) -> None:
    add = parser.add_argument
    add(
        "--concurrency",
        type=numbers,
        default=defaults.concurrency,
        help="closed-loop clients, comma-separated (default 8,32,64)",
    )
    add(
        "--seconds",
        type=positive,
        default=defaults.seconds,
        help="length of each closed-loop and pgbench run (default %(default)s)",
    )
    add(
        "--drain-rows",
        type=positive,
        default=defaults.drain_rows,
        help="outbox backlog the relay drains at each key count (default %(default)s)",
    )
    add(
        "--keys",
        type=numbers,
        default=defaults.key_counts,
        help="key counts the backlog is spread over, one drain each (default 10000,1000,100,1)",
    )


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    _load_arguments(parser, Settings())
    _search_arguments(parser, Settings())
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="short steps and runs, a small backlog: a smoke test (the other sizes are ignored)",
    )
    add(
        "--profile",
        action="store_true",
        help="also sample the API and the relay with py-spy (stacks in .state/bench/profiles)",
    )
    add("--output", type=Path, default=RESULTS, help="where latest.* go")
    add("--plot-only", action="store_true", help="redraw latest.png from latest.json and stop")
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    if args.quick:
        return Settings(
            concurrency=(8, 32),
            seconds=4,
            search=Plan(start=50, max_steps=5, resolution=0.25),
            step_seconds=4,
            warm_up_seconds=3,
            cpu_seconds=6,
            drain_rows=10_000,
            key_counts=args.keys,
            settle_timeout=15,
            recover_timeout=60,
            profile=args.profile,
        )
    return Settings(
        concurrency=args.concurrency,
        seconds=args.seconds,
        search=Plan(start=args.start_rate, max_steps=args.max_steps),
        step_seconds=args.step_seconds,
        warm_up_seconds=args.warm_up_seconds,
        cpu_fraction=args.cpu_fraction,
        cpu_seconds=args.cpu_seconds,
        drain_rows=args.drain_rows,
        key_counts=args.keys,
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
    _show(results, args.output)
    console.log(f"the bench took {time.monotonic() - started:.0f}s")
    return 0


def _show(results: Results, output: Path) -> None:
    """Write latest.{json,md,png} and print the tables, the noise warning and the profiles."""
    phase("Results")
    path = report.write(results, output)
    picture = plot.draw(results, output / "latest.png")
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
