#!/usr/bin/env python3
"""delay-proxy.py -- a TCP proxy on 127.0.0.1 that adds a fixed latency to every chunk in
each direction, without throttling throughput (chunks are scheduled, not slept on), so a
round trip costs 2 x DELAY more. Stands in for `tc qdisc netem` on kernels without it.
The kernel completes the client's connect() at once, so a new connection's first bytes
are held one more round trip: as over a real link, opening a connection costs a round
trip (the TCP handshake) before the request can leave, and reusing one does not.

Usage: delay-proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS
"""
import asyncio
import sys


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    pending = 0
    eof = False

    def send(chunk):
        nonlocal pending
        pending -= 1
        if chunk:
            writer.write(chunk)
        elif not writer.is_closing():
            try:
                writer.write_eof()
            except OSError:
                pass
        if eof and pending == 0 and not done.done():
            done.set_result(None)

    try:
        while True:
            chunk = await reader.read(65536)
            pending += 1
            # The delay is constant, so call_later keeps the chunks in order.
            loop.call_later(delay, send, chunk)
            if not chunk:
                eof = True
                break
        await done
    except (ConnectionError, OSError):
        pass


async def handle(client_r, client_w, upstream_port, delay):
    # The handshake's round trip; the request waits in the socket meanwhile.
    await asyncio.sleep(2 * delay)
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pump(client_r, up_w, delay), pump(up_r, client_w, delay))
    for w in (client_w, up_w):
        w.close()


async def main():
    listen, upstream, delay_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay = delay_ms / 1000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream, delay), "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
