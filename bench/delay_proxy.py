"""A TCP forwarder on loopback that delays every chunk, to run a benchmark
as if the hosts were a network away, and counts round trips.

usage: delay_proxy.py ONE_WAY_MS STATS_FILE LISTEN_HOST:PORT=TARGET_HOST:PORT ...

Each chunk read from one side is written to the other ONE_WAY_MS later, in
order; chunks in flight overlap, as on a real link, so the delay is latency,
not a bandwidth cap. A round trip is counted each time the server answers
after the client spoke (the direction of traffic turns from client->server
to server->client): that is a wait for the network a tool cannot pipeline
away. When a connection closes, one line is appended to STATS_FILE:
`LISTEN_ADDRESS ROUND_TRIPS BYTES_UP BYTES_DOWN`; the file `STATS_FILE.open`
holds the number of connections still open, so a caller can wait for 0.
Prints `ready` on stdout once every address listens.
"""
import asyncio
import sys
import time


class Stats:
    def __init__(self, path):
        self.path = path
        self.open = 0
        self.write_open()

    def write_open(self):
        with open(self.path + ".open", "w") as f:
            f.write(f"{self.open}\n")

    def opened(self):
        self.open += 1
        self.write_open()

    def closed(self, listen, trips, up, down):
        with open(self.path, "a") as f:
            f.write(f"{listen} {trips} {up} {down}\n")
        self.open -= 1
        self.write_open()


class Link:
    """One proxied connection: two directions and the turn counter."""

    def __init__(self, delay):
        self.delay = delay
        self.last = None  # "up" (client->server) or "down"
        self.trips = 0
        self.bytes = {"up": 0, "down": 0}

    async def pump(self, direction, reader, writer):
        queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                pause = due - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
            try:
                writer.write_eof()
            except OSError:
                pass

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if direction == "down" and self.last == "up":
                    self.trips += 1
                self.last = direction
                self.bytes[direction] += len(data)
                queue.put_nowait((time.monotonic() + self.delay, data))
        except OSError:
            pass
        queue.put_nowait((time.monotonic() + self.delay, None))
        try:
            await sender
        except OSError:
            pass


async def serve(listen, target, delay, stats):
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        stats.opened()
        link = Link(delay)
        try:
            server_reader, server_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_writer.close()
            stats.closed(listen, 0, 0, 0)
            return
        await asyncio.gather(
            link.pump("up", client_reader, server_writer),
            link.pump("down", server_reader, client_writer),
        )
        for w in (client_writer, server_writer):
            w.close()
        stats.closed(listen, link.trips, link.bytes["up"], link.bytes["down"])

    return await asyncio.start_server(handle, lhost, int(lport))


async def main():
    delay = float(sys.argv[1]) / 1000
    stats = Stats(sys.argv[2])
    servers = []
    for pair in sys.argv[3:]:
        listen, target = pair.split("=")
        servers.append(await serve(listen, target, delay, stats))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
