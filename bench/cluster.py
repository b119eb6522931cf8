"""The cluster-mode benchmark (issue 14): a follower against a single process, Redis traffic, takeover time.

    python bench/cluster.py                                   # everything (about eight minutes)
    python bench/cluster.py --parts efficiency --viewers 1000 --seconds 15
    python bench/cluster.py --parts takeover --leases 1 5 --repeats 5

All on 127.0.0.1, with ``bench/run.py``'s helpers and pinning (the process under test on
CPU 0, the rest on CPU 1):

1. efficiency: the viewer-frames per CPU-second of a follower replica (N viewers) against
   one process without ``[cluster]`` under the same load (``run.run_point``). The cluster
   case runs a ``redis-server``, the fake camera, the owner (started first, one viewer,
   checked to be the owner) and the load generator on CPU 1, the follower alone on CPU 0.
   The owner's and Redis's CPU over the same window are given too.
2. traffic: Redis's ``total_net_output_bytes`` / ``total_net_input_bytes`` (``redis-cli
   info stats``) over the window, per frame published (``cmdstat_publish`` calls), against
   the size of a bus message (the JPEGs the camera sent in that window, known from the
   stamps, plus the message header) times the followers; with one follower (the efficiency
   runs) and with two (a run with three replicas).
3. takeover: three replicas with viewers, the owner killed with SIGKILL a random time
   after its last steady frame; the time until a survivor's viewer receives a frame the
   camera sent after the kill (so one the new owner fetched), repeated per lease. The
   lease's ``PTTL`` just before the kill splits that time into the dead owner's lease
   running out and what follows (a follower noticing, taking the lease, the first frame).

Prints Markdown table rows, as ``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mjpeg_camera import TAG, load_frames, read_stamp  # noqa: E402

from run import BENCH, ROOT, SERVER_LIMITS, cpu_s, free_port, pinned, proxy_command, run_point, wait_port  # noqa: E402

CAMERA = "cam"
STREAM = f"/cameras/{CAMERA}/stream.mjpg"
LATEST_KEY = f"mjpeg-proxy:latest:{CAMERA}"
LEASE_KEY = f"mjpeg-proxy:lease:{CAMERA}"
"""The key where the owner keeps the latest bus message (``mjpeg_proxy.cluster.bus``)."""
BUS_HEADER = 31
"""Bytes of a bus message before its state and JPEG: magic, version, flags, epoch, seq, timestamp, state length."""
STAMP_AT = 6  # in a JPEG of bench/mjpeg_camera.py: SOI, COM marker, COM length, then TAG
STAMP_BYTES = 2 + 2 + len(TAG) + 16  # the COM segment mjpeg_camera.stamp inserts
CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# Processes ---------------------------------------------------------------------------------------


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def spawn(stack: contextlib.ExitStack, command: list[str], **kwargs) -> subprocess.Popen:
    """Start ``command``; ``stack`` stops it (SIGTERM, then SIGKILL after 10 s) when it closes."""
    process = subprocess.Popen(command, **kwargs)
    stack.callback(stop, process)
    return process


def start_redis(stack: contextlib.ExitStack, directory: str, cpu: int | None) -> tuple[subprocess.Popen, int]:
    """``redis-server`` on a free loopback port, persistence off, pub/sub buffers as the README advises."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", directory, "--daemonize", "no", "--loglevel", "warning"]
    command += ["--client-output-buffer-limit", "pubsub 256mb 128mb 30"]
    process = spawn(stack, command if cpu is None else pinned(cpu, command), stdout=subprocess.DEVNULL)
    wait_port(port)
    return process, port


def start_camera(stack: contextlib.ExitStack, fps: float, size: str, cpu: int | None) -> int:
    port = free_port()
    command = [sys.executable, str(BENCH / "mjpeg_camera.py"), "--port", str(port), "--fps", str(fps), "--size", size]
    spawn(stack, command if cpu is None else pinned(cpu, command))
    wait_port(port)
    return port


def write_config(directory: str, redis_port: int, camera_port: int, lease_s: float) -> str:
    path = Path(directory) / f"replica-lease-{lease_s:g}.toml"
    path.write_text(
        f'{SERVER_LIMITS}\n[cluster]\nredis_url = "redis://127.0.0.1:{redis_port}/0"\nlease_seconds = {lease_s:g}\n\n'
        f'[[cameras]]\nid = "{CAMERA}"\nsource = "mjpeg"\nurl = "http://127.0.0.1:{camera_port}/video.mjpg"\n',
        encoding="utf-8",
    )
    return str(path)


def start_replica(stack: contextlib.ExitStack, config: str, cpu: int | None) -> tuple[subprocess.Popen, int]:
    """A replica (``python -m mjpeg_proxy --config``) on a free port; its id is host:port, so unique here."""
    port = free_port()
    command = proxy_command(config, port)
    process = spawn(stack, command if cpu is None else pinned(cpu, command), cwd=ROOT)
    wait_port(port)
    return process, port


def start_loadgen(
    stack: contextlib.ExitStack, port: int, viewers: int, seconds: float, warmup: float = 3.0, quiet: bool = False
) -> subprocess.Popen:
    command = [sys.executable, str(BENCH / "loadgen.py"), "--url", f"http://127.0.0.1:{port}{STREAM}"]
    command += ["--viewers", str(viewers), "--seconds", str(seconds), "--warmup", str(warmup)]
    output = {"stdout": subprocess.DEVNULL} if quiet else {"stdout": subprocess.PIPE, "text": True}
    return spawn(stack, pinned(1, command), **output)


def expect_line(process: subprocess.Popen, line: str) -> None:
    assert process.stdout is not None
    got = process.stdout.readline().strip()
    if got != line:
        raise RuntimeError(f"the load generator said {got!r}, not {line!r}")


def cluster_status(port: int) -> dict:
    """The ``cluster`` part of ``/api/cameras/cam`` on the replica at ``port``: role, owner, epoch."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras/{CAMERA}", timeout=5) as response:
        return json.loads(response.read())["cluster"]


def wait_role(port: int, role: str, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = cluster_status(port)
        if status["role"] == role:
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replica on port {port} is {status}, not {role}")
        time.sleep(0.05)


# Redis's counters --------------------------------------------------------------------------------


def redis_info(port: int, section: str) -> dict[str, str]:
    """``redis-cli -p PORT info SECTION`` as a dict."""
    text = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "info", section],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def redis_counters(port: int) -> dict[str, int]:
    stats = redis_info(port, "stats")
    publish = redis_info(port, "commandstats").get("cmdstat_publish", "calls=0")
    return {
        "out": int(stats["total_net_output_bytes"]),
        "in": int(stats["total_net_input_bytes"]),
        "publishes": int(publish.split(",")[0].split("=")[1]),
    }


def latest_camera_seq(client: redis.Redis) -> int:
    """The camera's sequence number (its stamp) in the bus message kept as the latest."""
    data = client.get(LATEST_KEY)
    assert isinstance(data, bytes)
    jpeg_at = BUS_HEADER + data[BUS_HEADER - 1]
    assert data[jpeg_at + STAMP_AT : jpeg_at + STAMP_AT + len(TAG)] == TAG, "not a stamped frame on the bus"
    return read_stamp(data, jpeg_at + STAMP_AT)[0]


# 1 and 2: a follower's cost and Redis's traffic ---------------------------------------------------


def run_cluster(viewers: int, followers: int, fps: float, size: str, seconds: float) -> dict:
    """The owner (1 viewer, CPU 1) and ``followers`` followers (``viewers`` each, CPU 0); the first is under test."""
    frames = [len(jpeg) + STAMP_BYTES for jpeg in load_frames(size)]
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        redis_server, redis_port = start_redis(stack, directory, cpu=1)
        client = redis.Redis(host="127.0.0.1", port=redis_port)
        stack.callback(client.close)
        camera_port = start_camera(stack, fps, size, cpu=1)
        config = write_config(directory, redis_port, camera_port, 5.0)
        owner, owner_port = start_replica(stack, config, cpu=1)
        # The owner's viewer first, so the owner takes the lease before any follower wants the camera.
        start_loadgen(stack, owner_port, 1, seconds + 120, warmup=0.0, quiet=True)
        wait_role(owner_port, "owner")
        replicas = [start_replica(stack, config, cpu=0) for _ in range(followers)]
        time.sleep(1.0)
        loads = [start_loadgen(stack, port, viewers, seconds) for _, port in replicas]
        for load in loads:
            expect_line(load, "recording")
        seq0 = latest_camera_seq(client)
        counters0 = redis_counters(redis_port)
        pids = {"follower": replicas[0][0].pid, "owner": owner.pid, "redis": redis_server.pid}
        cpu0, t0 = {name: cpu_s(pid) for name, pid in pids.items()}, time.monotonic()
        for load in loads:
            expect_line(load, "done")
        cpu1, t1 = {name: cpu_s(pid) for name, pid in pids.items()}, time.monotonic()
        counters1 = redis_counters(redis_port)
        seq1 = latest_camera_seq(client)
        summaries = []
        for load in loads:
            assert load.stdout is not None
            summaries.append(json.loads(load.stdout.readline()))
            load.wait(30)
        roles = [cluster_status(port)["role"] for port in (owner_port, *(port for _, port in replicas))]
    if roles != ["owner", *["follower"] * followers]:
        raise RuntimeError(f"roles at the end: {roles}")
    cpu = {name: cpu1[name] - cpu0[name] for name in pids}
    published = counters1["publishes"] - counters0["publishes"]
    # The JPEGs the camera sent between the two latest messages read, plus each message's header and state.
    message_bytes = [frames[seq % len(frames)] + BUS_HEADER + len("live") for seq in range(seq0 + 1, seq1 + 1)]
    message = statistics.mean(message_bytes) if message_bytes else float("nan")
    out_per_frame = (counters1["out"] - counters0["out"]) / published if published else float("nan")
    in_per_frame = (counters1["in"] - counters0["in"]) / published if published else float("nan")
    summary = dict(summaries[0])
    summary.update(
        target=f"follower ({followers + 1} replicas)",
        fps=fps,
        size=size,
        followers=followers,
        all_followers_frames=sum(s["frames"] for s in summaries),
        server_cpu_percent=100 * cpu["follower"] / (t1 - t0),
        owner_cpu_percent=100 * cpu["owner"] / (t1 - t0),
        redis_cpu_percent=100 * cpu["redis"] / (t1 - t0),
        viewer_frames_per_cpu_s=summary["frames"] / cpu["follower"] if cpu["follower"] else float("inf"),
        published=published,
        camera_frames_in_window=seq1 - seq0,
        message_bytes=message,
        redis_out_per_frame=out_per_frame,
        redis_in_per_frame=in_per_frame,
    )
    return summary


EFFICIENCY_HEADER = (
    "| process under test | frames | fps | viewers | connected | viewer fps median / min | latency p50 / p99 ms "
    "| gaps | its CPU | viewer-frames per CPU-s | follower / single | owner CPU | Redis CPU | load generator CPU |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def efficiency_row(result: dict, single: dict | None) -> str:
    ratio = f"{result['viewer_frames_per_cpu_s'] / single['viewer_frames_per_cpu_s']:.2f}" if single else ""
    owner = f"{result['owner_cpu_percent']:.1f} %" if "owner_cpu_percent" in result else ""
    redis_cpu = f"{result['redis_cpu_percent']:.1f} %" if "redis_cpu_percent" in result else ""
    return (
        f"| {result['target']} | {result['size']} | {result['fps']:g} | {result['viewers']} | {result['connected']} "
        f"| {result['fps_median']:.2f} / {result['fps_min']:.2f} | {result['latency_p50_ms']:.1f} / "
        f"{result['latency_p99_ms']:.1f} | {result['gaps']} | {result['server_cpu_percent']:.1f} % "
        f"| {result['viewer_frames_per_cpu_s']:,.0f} | {ratio} | {owner} | {redis_cpu} "
        f"| {result['loadgen_cpu_percent']:.0f} % |"
    )


SUMMARY_HEADER = (
    "| viewers | rounds | single: viewer-frames per CPU-s, median | follower: the same, median "
    "| follower / single (medians) | follower / single per round | follower / single, rounds pooled |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
)


def summary_row(viewers: int, results: list[tuple[dict, dict]]) -> str:
    """The rounds of one viewer count: medians, and the ratio of all frames over all CPU (least quantized)."""
    singles = [s["viewer_frames_per_cpu_s"] for s, _ in results]
    followers = [f["viewer_frames_per_cpu_s"] for _, f in results]
    per_round = ", ".join(f"{f / s:.2f}" for s, f in zip(singles, followers, strict=True))

    def pooled(runs: list[dict]) -> float:
        frames = sum(r["frames"] for r in runs)
        cpu = sum(r["frames"] / r["viewer_frames_per_cpu_s"] for r in runs)
        return frames / cpu

    pooled_ratio = pooled([f for _, f in results]) / pooled([s for s, _ in results])
    return (
        f"| {viewers} | {len(results)} | {statistics.median(singles):,.0f} | {statistics.median(followers):,.0f} "
        f"| {statistics.median(followers) / statistics.median(singles):.2f} | {per_round} | {pooled_ratio:.2f} |"
    )


TRAFFIC_HEADER = (
    "| replicas | followers | viewers per follower | frames published | camera frames | bus message bytes (mean) "
    "| Redis out bytes per frame | out / (message x followers) | Redis in bytes per frame | in / message |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def traffic_row(result: dict) -> str:
    followers, message = result["followers"], result["message_bytes"]
    return (
        f"| {followers + 1} | {followers} | {result['viewers']} | {result['published']} "
        f"| {result['camera_frames_in_window']} | {message:,.0f} | {result['redis_out_per_frame']:,.0f} "
        f"| {result['redis_out_per_frame'] / (message * followers):.3f} | {result['redis_in_per_frame']:,.0f} "
        f"| {result['redis_in_per_frame'] / message:.3f} |"
    )


# 3: takeover after SIGKILL -----------------------------------------------------------------------


class StampViewer:
    """One viewer of a replica that reads whole parts and notes (arrival, camera send time) of each stamped frame."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frames: list[tuple[float, float]] = []
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                request = f"GET {STREAM} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAccept: */*\r\n\r\n"
                writer.write(request.encode())
                await reader.readuntil(b"\r\n\r\n")  # the response's head
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    match = CONTENT_LENGTH.search(head)
                    if match is None:
                        continue
                    body = await reader.readexactly(int(match.group(1)))
                    if body[STAMP_AT : STAMP_AT + len(TAG)] == TAG:
                        self.frames.append((time.time(), read_stamp(body, STAMP_AT)[1]))
                        self.arrived.set()
            finally:
                writer.close()

    def first_sent_after(self, when: float) -> float | None:
        """Arrival time of the first frame the camera sent after ``when``."""
        return next((arrival for arrival, sent in self.frames if sent > when), None)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def takeover_once(
    config: str, client: redis.Redis, lease_s: float, viewers_each: int, rng: random.Random
) -> dict:
    with contextlib.ExitStack() as stack:
        first = start_replica(stack, config, cpu=None)
        viewers = {first[1]: [StampViewer(first[1]) for _ in range(viewers_each)]}
        await asyncio.to_thread(wait_role, first[1], "owner")
        replicas = [first, *[start_replica(stack, config, cpu=None) for _ in range(2)]]
        for _, port in replicas[1:]:
            viewers[port] = [StampViewer(port) for _ in range(viewers_each)]
        try:
            async with asyncio.timeout(20):
                for port_viewers in viewers.values():
                    for viewer in port_viewers:
                        await viewer.arrived.wait()
            roles = {port: (await asyncio.to_thread(cluster_status, port))["role"] for _, port in replicas}
            owners = [port for port, role in roles.items() if role == "owner"]
            if len(owners) != 1 or sorted(roles.values()) != ["follower", "follower", "owner"]:
                raise RuntimeError(f"roles before the kill: {roles}")
            owner = next(process for process, port in replicas if port == owners[0])
            # Kill at a random point of the owner's renewal period (it extends every lease / 3).
            await asyncio.sleep(1.0 + rng.uniform(0, lease_s / 3))
            lease_left_ms = await asyncio.to_thread(client.pttl, LEASE_KEY)  # when the dead owner's lease runs out
            killed_wall, killed = time.time(), time.monotonic()
            owner.send_signal(signal.SIGKILL)
            survivors = [port for _, port in replicas if port != owners[0]]
            role_s = None
            async with asyncio.timeout(lease_s + 15):
                while True:
                    if role_s is None:
                        for port in survivors:
                            if (await asyncio.to_thread(cluster_status, port))["role"] == "owner":
                                role_s = time.monotonic() - killed
                    arrivals = [v.first_sent_after(killed_wall) for port in survivors for v in viewers[port]]
                    if role_s is not None and all(a is not None for a in arrivals):
                        break
                    await asyncio.sleep(0.02)
            new_roles = sorted([(await asyncio.to_thread(cluster_status, port))["role"] for port in survivors])
        finally:
            for port_viewers in viewers.values():
                for viewer in port_viewers:
                    await viewer.close()
    return {
        "lease_s": lease_s,
        "role_s": role_s,
        "lease_left_s": lease_left_ms / 1000,
        "first_frame_s": min(arrivals) - killed_wall,
        "after_expiry_s": min(arrivals) - killed_wall - lease_left_ms / 1000,
        "all_frames_s": max(arrivals) - killed_wall,
        "survivor_roles": new_roles,
    }


async def takeover(lease_s: float, repeats: int, viewers_each: int, fps: float, size: str) -> list[dict]:
    rng = random.Random(14)
    results = []
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        _, redis_port = start_redis(stack, directory, cpu=None)
        client = redis.Redis(host="127.0.0.1", port=redis_port)
        stack.callback(client.close)
        camera_port = start_camera(stack, fps, size, cpu=None)
        config = write_config(directory, redis_port, camera_port, lease_s)
        for _ in range(repeats):
            results.append(await takeover_once(config, client, lease_s, viewers_each, rng))
            # A clean slate: no lease, interest or latest frame of the last round's replicas.
            client.flushall()
    return results


TAKEOVER_HEADER = (
    "| lease s | runs | a survivor is owner (API), median / max s | first survivor viewer gets a new frame, "
    "median / max s | every survivor viewer has one, median / max s | target (lease + 1 frame) s | within target "
    "| lease left at the kill, median / min s | from the lease's end to that first frame, median / max s |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def takeover_row(lease_s: float, fps: float, results: list[dict]) -> str:
    def pair(key: str) -> str:
        values = [r[key] for r in results]
        return f"{statistics.median(values):.2f} / {max(values):.2f}"

    target = lease_s + 1 / fps
    left = [r["lease_left_s"] for r in results]
    within = sum(1 for r in results if r["first_frame_s"] < target)
    return (
        f"| {lease_s:g} | {len(results)} | {pair('role_s')} | {pair('first_frame_s')} | {pair('all_frames_s')} "
        f"| {target:.2f} | {within} of {len(results)} | {statistics.median(left):.2f} / {min(left):.2f} "
        f"| {pair('after_expiry_s')} |"
    )


# -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="*", default=["efficiency", "traffic", "takeover"])
    parser.add_argument("--viewers", type=int, nargs="*", default=[1000, 200], help="on the process under test")
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=15.0, help="each measuring window")
    parser.add_argument("--rounds", type=int, default=3, help="single/follower pairs per viewer count")
    parser.add_argument("--traffic-viewers", type=int, default=200, help="per follower in the two-follower run")
    parser.add_argument("--leases", type=float, nargs="*", default=[1.0, 5.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--takeover-viewers", type=int, default=2, help="viewers on each of the three replicas")
    args = parser.parse_args()
    if (
        not 1 <= args.seconds <= 120
        or not 1 <= args.repeats <= 20
        or not 1 <= args.rounds <= 10
        or max(args.viewers, default=0) > 5000
    ):
        parser.error("keep windows at 1-120 s, repeats at 1-20, rounds at 1-10 and viewers at most 5000")
    record = BENCH / "results-cluster.jsonl"
    traffic = []
    if "efficiency" in args.parts:
        print(EFFICIENCY_HEADER, flush=True)
        pairs: dict[int, list[tuple[dict, dict]]] = {}
        for viewers in args.viewers:
            for _ in range(args.rounds):  # single and follower in turn, so a change of load hits both alike
                single = run_point("proxy", viewers, args.fps, args.size, args.seconds, 0)
                single["target"] = "single process"
                print(efficiency_row(single, None), flush=True)
                follower = run_cluster(viewers, 1, args.fps, args.size, args.seconds)
                print(efficiency_row(follower, single), flush=True)
                pairs.setdefault(viewers, []).append((single, follower))
                traffic.append(follower)
                with open(record, "a") as out:
                    out.write(json.dumps({"part": "efficiency", "single": single, "follower": follower}) + "\n")
        print(flush=True)
        print(SUMMARY_HEADER, flush=True)
        for viewers, results in pairs.items():
            print(summary_row(viewers, results), flush=True)
        print(flush=True)
    if "traffic" in args.parts:
        two = run_cluster(args.traffic_viewers, 2, args.fps, args.size, args.seconds)
        traffic.append(two)
        with open(record, "a") as out:
            out.write(json.dumps({"part": "traffic", "result": two}) + "\n")
        print(TRAFFIC_HEADER, flush=True)
        for result in traffic:
            print(traffic_row(result), flush=True)
        print(flush=True)
    if "takeover" in args.parts:
        print(TAKEOVER_HEADER, flush=True)
        for lease_s in args.leases:
            results = asyncio.run(takeover(lease_s, args.repeats, args.takeover_viewers, args.fps, args.size))
            print(takeover_row(lease_s, args.fps, results), flush=True)
            with open(record, "a") as out:
                out.write(json.dumps({"part": "takeover", "lease_s": lease_s, "runs": results}) + "\n")


if __name__ == "__main__":
    main()
