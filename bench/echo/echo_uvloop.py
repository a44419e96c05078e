"""The asyncio echo server of the echo benchmark, on uvloop, written with the
streams API as a typical user would: read(65536), write, drain.

    python3 echo_uvloop.py [PORT]     (0 or nothing: any free port)

Listens on 127.0.0.1 and prints the port on the first line of stdout."""
import asyncio
import sys

try:
    import uvloop
except ImportError as e:  # run.sh picks an interpreter that has it
    sys.exit(f"{sys.executable}: cannot import uvloop ({e}); on Debian: "
             "apt install python3-uvloop and run with /usr/bin/python3")


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main(port))
    except KeyboardInterrupt:
        pass
