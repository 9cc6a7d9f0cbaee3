"""CPU per order, per process, at one fixed rate: a quick before/after for one change.

`python -m bench.cpu_at_rate [--rate 40] [--seconds 20] [--passes 3]` starts the stack as
`make bench` does (authentication, SASL, a login per process), runs the API, relay and
consumer, offers `rate` orders a second (vegeta, open loop) for `seconds`, `passes` times,
and after each pass, once every order has left `pending`, prints each process's CPU
milliseconds per order and the pass's end-to-end p50 and p99 (commit → consumer's
change). Kafka's JIT is still warming in the first passes: compare the last. About a
minute and a half, where `make bench` takes five; its figures are per order at a fixed
rate, not the headline's (which come from `make bench` alone).
"""

from __future__ import annotations

import argparse
import sys

from bench import api_load, cpu, end_to_end, stack, tools
from bench.api_load import Tools
from bench.arguments import positive
from bench.run import Run, Settings
from bench.ui import console, phase

SETTLE_SECONDS = 60.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_at_rate", description=__doc__)
    add = parser.add_argument
    add("--rate", type=positive, default=40, help="orders/s (default %(default)s)")
    add("--seconds", type=positive, default=20, help="each pass (default %(default)s)")
    add("--passes", type=positive, default=3, help="(default %(default)s)")
    args = parser.parse_args(argv)
    with stack.running() as system:
        run = Run(system, Settings(), Tools(wrk="", vegeta=tools.vegeta(console)), pgbench="")
        for name in ("api", "relay", "consumer"):
            system.start(name)
        run.sampler.start()
        try:
            with system.sql() as conn:
                for number in range(1, args.passes + 1):
                    label = f"pass {number}: {args.rate}/s for {args.seconds}s"
                    phase(label)
                    with run.measured(label):
                        result, _ = api_load.open_loop(
                            run.load, system.api, args.rate, args.seconds, f"p{number}", run.work
                        )
                        end_to_end.wait_settled(conn, f"p{number}", timeout=SETTLE_SECONDS)
                    if result.ok < 1:
                        console.print(f"[red]{label}: no order was created ({result.errors})")
                        return 1
                    found = cpu.per_unit(
                        label, run.out.used[label], result.ok, run.out.elapsed[label]
                    )
                    each = ", ".join(f"{role} {ms:.2f}" for role, ms in found.ms_per_unit.items())
                    flow, _ = end_to_end.measure(conn, f"p{number}", args.rate, args.seconds)
                    console.print(
                        f"{label}: CPU ms per order {found.total_ms:.2f} ({each}); "
                        f"end to end p50 {flow.p50_ms} ms, p99 {flow.p99_ms} ms"
                    )
        finally:
            run.sampler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
