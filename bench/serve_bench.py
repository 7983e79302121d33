"""Benchmark the real IMDS app on loopback: throughput, latency, and memory while issuing tokens.

Run by hand with `make bench`. The app is `create_app` over a `CredentialEngine` whose source
hands out fixed fake credentials, so nothing but 127.0.0.1 is ever contacted and no AWS (real
or moto) is involved. Every phase is bounded both in request count and in wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import statistics
import sys
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp import web

from imds_proxy import config
from imds_proxy.engine.credentials import Credentials, utc_now
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.server.app import create_app

HOST = "127.0.0.1"  # the only address this benchmark talks to
ROLE_ARN = "arn:aws:iam::123456789012:role/bench-role"
ROLE = "bench-role"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_PATH = "/latest/api/token"
CREDS_PATH = f"/latest/meta-data/iam/security-credentials/{ROLE}"


class FixedSource:
    """A Source that always returns the same fake credentials, valid for 12 hours from start:
    long enough that the engine never refreshes during a run."""

    def __init__(self) -> None:
        now = utc_now()
        self.calls = 0
        self._creds = Credentials(
            access_key_id="ASIABENCHFAKE0000001",
            secret_access_key="bench-fake-secret-not-a-real-key",
            session_token="bench-fake-session-token-" + "x" * 300,
            expiration=now + timedelta(hours=12),
            last_updated=now,
            role_arn=ROLE_ARN,
            account_id="123456789012",
        )

    @property
    def role_arn(self) -> str:
        return ROLE_ARN

    @property
    def cache_key(self) -> Hashable:
        return ROLE_ARN

    async def fetch(self) -> Credentials:
        self.calls += 1
        return self._creds


@dataclass
class PhaseResult:
    name: str
    done: int
    errors: int
    elapsed: float
    latencies: list[float]  # seconds, one per timed unit (request or pair)
    unit: str = "request"
    requests_per_unit: int = 1
    capped: bool = False

    def report(self) -> str:
        rps = self.done * self.requests_per_unit / self.elapsed if self.elapsed else 0.0
        requests = f" ({self.done * self.requests_per_unit} requests)" if self.requests_per_unit > 1 else ""
        lines = [
            f"[{self.name}]",
            f"  completed {self.done} {self.unit}s{requests} in {self.elapsed:.2f} s, errors {self.errors}"
            + (" — stopped by the time cap" if self.capped else ""),
            f"  throughput {rps:,.0f} requests/s",
        ]
        if len(self.latencies) >= 2:
            q = statistics.quantiles(self.latencies, n=100, method="inclusive")
            lines.append(
                f"  {self.unit} latency p50 {q[49] * 1e3:.2f} ms, p95 {q[94] * 1e3:.2f} ms, "
                f"p99 {q[98] * 1e3:.2f} ms, max {max(self.latencies) * 1e3:.2f} ms"
            )
        return "\n".join(lines)


def rss_kib() -> int:
    """Current resident set size in KiB (VmRSS); the peak from getrusage where /proc is absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


async def get_token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.put(base + TOKEN_PATH, headers={TTL_HEADER: "21600"}) as r:
        body = await r.text()
        if r.status != 200 or r.headers.get(TTL_HEADER) != "21600":
            raise RuntimeError(f"token PUT answered {r.status}: {body[:80]!r}")
        return body


async def get_creds(session: aiohttp.ClientSession, base: str, token: str) -> bool:
    async with session.get(base + CREDS_PATH, headers={TOKEN_HEADER: token}) as r:
        body = await r.read()
        return r.status == 200 and b'"Code": "Success"' in body


async def sequential_pairs(session: aiohttp.ClientSession, base: str, pairs: int, cap: float) -> PhaseResult:
    """(a) One client, one request at a time: token PUT then credentials GET, which is every
    credential fetch of botocore, the JS and the Java SDKs (they fetch a new token each time)."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + cap
    for _ in range(pairs):
        if time.perf_counter() >= deadline:
            break
        t0 = time.perf_counter()
        try:
            ok = await get_creds(session, base, await get_token(session, base))
        except (aiohttp.ClientError, TimeoutError, RuntimeError):
            ok = False
        latencies.append(time.perf_counter() - t0)
        errors += not ok
    elapsed = time.perf_counter() - start
    return PhaseResult(
        name=f"a: sequential token PUT + credentials GET pairs, N={pairs}",
        done=len(latencies),
        errors=errors,
        elapsed=elapsed,
        latencies=latencies,
        unit="pair",
        requests_per_unit=2,
        capped=len(latencies) < pairs,
    )


async def concurrent_gets(
    session: aiohttp.ClientSession, base: str, workers: int, total: int, cap: float
) -> PhaseResult:
    """(b) `workers` clients at once, each reusing one token (as the Go SDKs do), sharing
    `total` credentials GETs; stops early at the time cap."""
    latencies: list[float] = []
    errors = 0
    remaining = total
    start = time.perf_counter()
    deadline = start + cap

    async def worker() -> None:
        nonlocal remaining, errors
        token = await get_token(session, base)
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                ok = await get_creds(session, base, token)
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - start
    return PhaseResult(
        name=f"b: {workers} concurrent workers, credentials GETs, total {total}, time cap {cap:.0f} s",
        done=len(latencies),
        errors=errors,
        elapsed=elapsed,
        latencies=latencies,
        capped=len(latencies) < total,
    )


async def issue_tokens(
    session: aiohttp.ClientSession, base: str, workers: int, total: int, cap: float
) -> PhaseResult:
    """(c) `total` token PUTs over HTTP; the tokens are dropped at once (the client keeps none),
    so any growth in RSS would be the server remembering them."""
    errors = 0
    done = 0
    remaining = total
    start = time.perf_counter()
    deadline = start + cap

    async def worker() -> None:
        nonlocal remaining, errors, done
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            try:
                await get_token(session, base)
            except (aiohttp.ClientError, TimeoutError, RuntimeError):
                errors += 1
            done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - start
    return PhaseResult(
        name=f"c: {total} token PUTs, {workers} workers, time cap {cap:.0f} s",
        done=done,
        errors=errors,
        elapsed=elapsed,
        latencies=[],
        capped=done < total,
    )


def phase_cap(args: argparse.Namespace, run_deadline: float) -> float:
    """A phase's time cap: its own cap, cut to what is left of the whole run's budget."""
    own: float = args.cap
    return max(0.0, min(own, run_deadline - time.perf_counter()))


async def main(args: argparse.Namespace) -> int:
    run_deadline = time.perf_counter() + args.budget
    cfg = config.build({"role_arn": ROLE_ARN, "listen": [f"{HOST}:0"]})
    source = FixedSource()
    engine = CredentialEngine({cfg.role.name: source}, cfg.refresh, utc_now)
    app = create_app(cfg, engine)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://{HOST}:{port}"
        await engine.get(cfg.role.name)  # prime the cache, as the daemon does before serving
        python = sys.version.split()[0]
        print(f"imds-proxy bench: app on {base}/ (Python {python}, aiohttp {aiohttp.__version__}, ", end="")
        print(f"{os.cpu_count()} CPUs; client and server share one event loop)")

        connector = aiohttp.TCPConnector(limit=args.workers, limit_per_host=args.workers)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            results = [await sequential_pairs(session, base, args.pairs, phase_cap(args, run_deadline))]
            print(results[-1].report(), flush=True)
            results.append(
                await concurrent_gets(
                    session, base, args.workers, args.requests, phase_cap(args, run_deadline)
                )
            )
            print(results[-1].report(), flush=True)

            gc.collect()
            before = rss_kib()
            tokens = await issue_tokens(
                session, base, args.workers, args.tokens, phase_cap(args, run_deadline)
            )
            gc.collect()
            after = rss_kib()
            print(tokens.report())
            print(
                f"  process RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB "
                f"({after - before:+d} KiB for {tokens.done} tokens)"
            )
        print(f"source fetches during the run: {source.calls}")
        errors = sum(r.errors for r in [*results, tokens])
    finally:
        await runner.cleanup()
    return 1 if errors else 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--pairs", type=int, default=2000, help="phase a: sequential pairs (default 2000)")
    p.add_argument("--workers", type=int, default=50, help="phases b, c: concurrent clients (default 50)")
    p.add_argument("--requests", type=int, default=10000, help="phase b: total GETs (default 10000)")
    p.add_argument("--tokens", type=int, default=100000, help="phase c: tokens issued (default 100000)")
    p.add_argument("--cap", type=float, default=60.0, help="time cap per phase, seconds (default 60)")
    p.add_argument("--budget", type=float, default=100.0, help="time cap for all phases (default 100)")
    return p.parse_args()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
