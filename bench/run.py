"""`make bench`: imds-proxy side by side with a bare aiohttp app, under wrk, on loopback only.

Each server is pinned to one core (taskset) and wrk to the other; rounds are interleaved so noise
hits every server alike. Prints a table (req/s, p50, p99, ratio to the bare app), start-up time,
RSS after many tokens and connections, and writes the figures as JSON. Run by hand, never by the
test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
WRK = HERE / "wrk"
PYTHON = sys.executable
ROLE = "bench"
ROLE_ARN = f"arn:aws:iam::123456789012:role/{ROLE}"
CREDS = f"/latest/meta-data/iam/security-credentials/{ROLE}"
#: Never through a proxy: everything here is on loopback.
LOG = open(os.environ.get("BENCH_LOG", os.devnull), "ab")  # noqa: SIM115 - the servers' stderr
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Result:
    server: str
    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 2) -> bytes:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    with _OPENER.open(request, timeout=timeout) as response:
        body: bytes = response.read()
    return body


def wait_until(what: str, check: Any, limit: float = 30.0) -> float:
    """Poll `check()` until it returns without raising; seconds it took."""
    start = time.perf_counter()
    while True:
        try:
            check()
            return time.perf_counter() - start
        except Exception:
            if time.perf_counter() - start > limit:
                raise SystemExit(f"bench: {what} did not come up within {limit:.0f} s") from None
            time.sleep(0.005)


@contextmanager
def process(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=LOG)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv]


def moto_with_role(port: int) -> float:
    """Create the benchmark's role in the local AWS; return one STS AssumeRole round trip (s)."""
    import boto3

    kwargs: dict[str, Any] = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": "bench",
    }
    iam = boto3.client("iam", **kwargs)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    sts = boto3.client("sts", **kwargs)
    trips = []
    for _ in range(5):
        start = time.perf_counter()
        sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="bench")
        trips.append(time.perf_counter() - start)
    return statistics.median(trips)


def daemon_env(moto_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMDS_PROXY_"))}
    env.update(
        AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        IMDS_PROXY_CONTROL_SOCKET=str(Path(tempfile.mkdtemp(prefix="imds-bench-")) / "control.sock"),
    )
    return env


def wrk(url: str, script: str, connections: int, seconds: float, env: dict[str, str]) -> tuple[str, Result]:
    argv = pinned(
        1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(WRK / script), url]
    )
    out = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=seconds + 30
    )
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    return text, Result("", "", connections, rps, _percentile(text, "50"), _percentile(text, "99"), errors)


def _percentile(text: str, which: str) -> float:
    m = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\b", text, re.M)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


SCENARIOS = [  # (name, script, close each connection, connection counts)
    ("GET", "get.lua", False, (1, 10, 100)),
    ("PUT+GET keep-alive", "put_get.lua", False, (10,)),
    ("PUT+GET new conn", "put_get.lua", True, (10,)),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="length of one wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (3)")
    parser.add_argument("--tokens", type=int, default=1_000_000, help="tokens issued before the RSS reading")
    parser.add_argument(
        "--connections", type=int, default=10_000, help="connections opened and closed for RSS"
    )
    parser.add_argument("--uvloop", action="store_true", help="also run the bare app on uvloop")
    parser.add_argument(
        "--json", type=Path, default=HERE / "last-run.json", help="where to write the figures"
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(
                f"bench: {tool} is not installed: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'}",
                file=sys.stderr,
            )
            return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs two cores (one for the server, one for wrk)", file=sys.stderr)
        return 2

    moto_port, daemon_port, bare_port = free_port(), free_port(), free_port()
    figures: dict[str, Any] = {"cores": os.cpu_count(), "seconds": args.seconds, "rounds": args.rounds}
    moto = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)]
    with process(moto):
        wait_until("the local AWS", lambda: call(f"http://127.0.0.1:{moto_port}/moto-api/"))
        sts_rtt = moto_with_role(moto_port)
        serve = pinned(
            0,
            [
                str(Path(PYTHON).parent / "imds-proxy"),
                "serve",
                "--role-arn",
                ROLE_ARN,
                "--listen",
                f"127.0.0.1:{daemon_port}",
                "--region",
                "us-east-1",
                "--sts-endpoint-url",
                f"http://127.0.0.1:{moto_port}",
            ],
        )
        spawned = time.perf_counter()
        with process(serve, daemon_env(moto_port)) as daemon:
            base = f"http://127.0.0.1:{daemon_port}"

            def ready() -> None:
                token = call(
                    base + "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
                )
                call(base + CREDS, headers={"X-aws-ec2-metadata-token": token.decode()})

            wait_until("imds-proxy", ready)
            startup = time.perf_counter() - spawned
            token = call(base + "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
            body = call(base + CREDS, headers={"X-aws-ec2-metadata-token": token.decode()})
            figures["startup_s"], figures["sts_round_trip_s"] = round(startup, 3), round(sts_rtt, 4)
            figures["credentials_body_bytes"] = len(body)
            results, rss = run_servers(args, daemon, base, token.decode(), len(body), bare_port)
    figures["results"] = [asdict(r) for r in results]
    print(table(results))
    print(
        f"\nstart-up to serving: {startup:.2f} s (one STS round trip: {sts_rtt * 1000:.0f} ms); "
        f"cores: {os.cpu_count()}; credentials body: {len(body)} bytes"
    )
    figures.update(rss)
    print(
        f"RSS: {rss['rss_start_kib'] / 1024:.1f} MiB at start, {rss['rss_after_tokens_kib'] / 1024:.1f} MiB "
        f"after {rss['tokens']:,} tokens, {rss['rss_after_connections_kib'] / 1024:.1f} MiB after "
        f"{rss['connections']:,} connections"
    )
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.json}")
    return 1 if any(r.errors for r in results) else 0


def run_servers(
    args: argparse.Namespace,
    daemon: subprocess.Popen[bytes],
    base: str,
    token: str,
    body_size: int,
    bare_port: int,
) -> tuple[list[Result], dict[str, int]]:
    bare = [
        PYTHON,
        str(HERE / "bare_app.py"),
        "--port",
        str(bare_port),
        "--body-size",
        str(body_size),
        "--token-size",
        str(len(token)),
    ]
    servers = {"imds-proxy": base, "bare aiohttp": f"http://127.0.0.1:{bare_port}"}
    with process(pinned(0, bare)) as _bare:
        wait_until("the bare app", lambda: call(servers["bare aiohttp"] + CREDS))
        procs = [_bare]
        if args.uvloop:
            uv_port = free_port()
            procs.append(
                subprocess.Popen(
                    pinned(
                        0,
                        [
                            PYTHON,
                            str(HERE / "bare_app.py"),
                            "--uvloop",
                            "--port",
                            str(uv_port),
                            "--body-size",
                            str(body_size),
                        ],
                    )
                )
            )
            servers["bare aiohttp + uvloop"] = f"http://127.0.0.1:{uv_port}"
            wait_until("the uvloop app", lambda: call(servers["bare aiohttp + uvloop"] + CREDS))
        try:
            rss = {"rss_start_kib": rss_kib(daemon.pid)}
            rounds: dict[tuple[str, str, int], list[Result]] = {}
            for _ in range(args.rounds):
                for name, script, close, counts in SCENARIOS:
                    for connections in counts:
                        for server, url in servers.items():
                            env = {
                                "BENCH_TOKEN": token,
                                "BENCH_PATH": CREDS,
                                "BENCH_CLOSE": "1" if close else "0",
                            }
                            _, result = wrk(url, script, connections, args.seconds, env)
                            result.server, result.scenario = server, name
                            rounds.setdefault((server, name, connections), []).append(result)
            rss.update(memory_phase(args, daemon, base))
        finally:
            for proc in procs[1:]:
                proc.terminate()
                proc.wait(10)
    return [median(results) for results in rounds.values()], rss


def memory_phase(args: argparse.Namespace, daemon: subprocess.Popen[bytes], base: str) -> dict[str, int]:
    """RSS after `--tokens` token PUTs, then after `--connections` connections opened and closed
    (wrk runs of 10 s repeated until the count is reached, 10 minutes at most for each)."""
    rss: dict[str, int] = {}
    for what, target, close in (("tokens", args.tokens, "0"), ("connections", args.connections, "1")):
        done, started = 0, time.monotonic()
        while done < target and time.monotonic() - started < 600:
            text, _ = wrk(base, "count.lua", 10, 10, {"BENCH_CLOSE": close})
            done += int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
        rss[what] = done
        rss[f"rss_after_{what}_kib"] = rss_kib(daemon.pid)
    return rss


def median(results: list[Result]) -> Result:
    first = results[0]
    return Result(
        first.server,
        first.scenario,
        first.connections,
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def table(results: list[Result]) -> str:
    ceiling = {(r.scenario, r.connections): r.rps for r in results if r.server == "bare aiohttp"}
    lines = [
        f"{'server':<24}{'scenario':<22}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'× bare':>8}"
        f"{'errors':>8}"
    ]
    for r in sorted(results, key=lambda r: (r.scenario, r.connections, r.server)):
        ratio = r.rps / ceiling[(r.scenario, r.connections)]
        lines.append(
            f"{r.server:<24}{r.scenario:<22}{r.connections:>6}{r.rps:>10,.0f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}{ratio:>8.2f}{r.errors:>8}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
