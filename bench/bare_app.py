"""The ceiling: a bare aiohttp app answering the token PUT and the credentials GET with constant
bodies of the daemon's sizes, no checks at all. `make bench` runs it beside imds-proxy."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def build(body: bytes, token: bytes) -> web.Application:
    async def put_token(_: web.Request) -> web.Response:
        return web.Response(
            body=token, content_type="text/plain", headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
        )

    async def get_credentials(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_put("/latest/api/token", put_token)
    app.router.add_get("/{tail:.*}", get_credentials)
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build(b"x" * args.body_size, b"t" * args.token_size), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-size", type=int, required=True)
    parser.add_argument("--token-size", type=int, default=58)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop  # type: ignore[import-not-found]

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
