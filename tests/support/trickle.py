"""`python -m tests.support.trickle PORT COUNT TOKEN`: hold COUNT connections to the API
on loopback, each sending one byte a second — half of them their headers, half (with
TOKEN) a body under the size cap — and come back a second after being cut off, as an
attacker would. Prints "connected N" (connections open right then) after the first
bytes have gone out, then runs until it is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

ORDERS = "/api/v1/orders"
OPEN: set[int] = set()


def request(token: str | None) -> tuple[bytes, int]:
    """The bytes to dribble, and how many of them go at once (a body's headers do)."""
    head = f"POST {ORDERS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if token is None:
        return (head + "X-Slow: " + "x" * 1000).encode(), 0
    head += f"Authorization: Bearer {token}\r\nContent-Length: 10000\r\n\r\n"
    return (head + "x" * 10_000).encode(), len(head)


async def trickle(number: int, port: int, token: str | None) -> None:
    data, at_once = request(token)
    while True:
        writer = None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            OPEN.add(number)
            writer.write(data[:at_once])
            for index in range(at_once, len(data)):
                writer.write(data[index : index + 1])
                await writer.drain()
                await asyncio.sleep(1)  # the pace of the attack, not a synchronisation
        except OSError:
            pass  # cut off by the server
        finally:
            OPEN.discard(number)
            if writer is not None:
                writer.close()
        await asyncio.sleep(1)


async def main(port: int, count: int, token: str) -> None:
    tasks = [
        asyncio.create_task(trickle(number, port, token if number % 2 else None))
        for number in range(count)
    ]
    await asyncio.sleep(3)
    print(f"connected {len(OPEN)}", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
