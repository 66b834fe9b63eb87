"""A TCP proxy that delays every byte by a fixed time each way: loopback servers made as far away as a real fleet.

    python bench/delay.py --one-way-ms 5 LISTEN_PORT:TARGET_PORT [...]

This machine's kernel has no netem, so `tc qdisc ... netem delay` is not available; this proxy stands in.
Each chunk is forwarded `one-way-ms` after it arrived, so a round trip costs twice that and pipelined data is
not delayed more than once. It prints "ready" when every port listens and runs until killed. Bench use only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk sent `delay` seconds after it arrived."""
    queue: asyncio.Queue = asyncio.Queue()

    async def receive() -> None:
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), send())
    except (ConnectionError, OSError):
        writer.close()


async def serve(listen: int, target: int, delay: float) -> asyncio.AbstractServer:
    async def accept(client_reader, client_writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer, delay), pipe(upstream_reader, client_writer, delay),
                             return_exceptions=True)

    return await asyncio.start_server(accept, "127.0.0.1", listen)


async def main_async(pairs: list[tuple[int, int]], delay: float) -> None:
    servers = [await serve(listen, target, delay) for listen, target in pairs]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one-way-ms", type=float, required=True, help="delay added in each direction")
    parser.add_argument("pairs", nargs="+", help="LISTEN_PORT:TARGET_PORT on 127.0.0.1")
    args = parser.parse_args()
    pairs = [tuple(int(p) for p in pair.split(":")) for pair in args.pairs]
    try:
        asyncio.run(main_async(pairs, args.one_way_ms / 1000))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
