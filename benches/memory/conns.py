#!/usr/bin/env python3
"""Open N keep-alive HTTP/1.1 connections to HOST:PORT, send one request on each,
read its response, and hold them all open until stdin closes (or a line arrives).
Prints how many are open and answered. Used by benches/memory/run.sh."""
import asyncio
import sys


async def one(host, port, path, conns, answered):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    conns.append(writer)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: memory.test\r\n\r\n".encode())
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except Exception:
        return
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    answered.append(1)


async def main():
    host, port, n, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    conns, answered = [], []
    # Open in batches so the listen backlog is not overrun.
    for start in range(0, n, 500):
        await asyncio.gather(
            *(one(host, port, path, conns, answered) for _ in range(min(500, n - start)))
        )
    open_now = sum(1 for w in conns if not w.is_closing())
    print(f"open {open_now} answered {len(answered)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for w in conns:
        w.close()


asyncio.run(main())
