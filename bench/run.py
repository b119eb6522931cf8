"""The benchmark: the proxy and the reference relay under the same load, side by side.

    python bench/run.py                      # the whole matrix (takes a while)
    python bench/run.py --viewers 1000 --fps 4 --size 1280x720 --seconds 20

For each point it starts, all on 127.0.0.1: the fake camera (``mjpeg_camera.py``), the
server under test pinned to CPU 0 (``taskset``), and the load generator (``loadgen.py``)
pinned to CPU 1 with the camera. It reads the server's CPU time and memory from
``/proc/<pid>`` over the load generator's measuring window, and prints one Markdown
table row per run, with the proxy's results also as a ratio to the reference relay's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid: int) -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command]


SERVER_LIMITS = "[server]\nmax_viewers = 100000\nmax_viewers_per_camera = 100000\nmax_connections_per_client = 100000\n"
"""The ``[server]`` table of every benchmarked proxy: no viewer limit gets in the way of the load."""


def proxy_command(config: str, port: int, loop: str = "asyncio") -> list[str]:
    """The command line of the proxy under test with configuration file ``config`` (run it with ``cwd=ROOT``)."""
    command = [sys.executable, "-m", "mjpeg_proxy", "--config", config, "--port", str(port)]
    return [*command, "--event-loop", loop, "--log-level", "warning"]


def run_point(target: str, viewers: int, fps: float, size: str, seconds: float, slow: int) -> dict:
    camera_port, server_port = free_port(), free_port()
    camera_command = [sys.executable, str(BENCH / "mjpeg_camera.py"), "--port", str(camera_port)]
    camera = subprocess.Popen(pinned(1, [*camera_command, "--fps", str(fps), "--size", size]))
    upstream = f"http://127.0.0.1:{camera_port}/video.mjpg"
    config = None
    try:
        wait_port(camera_port)
        if target.startswith("proxy"):
            config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
            config.write(f'{SERVER_LIMITS}[[cameras]]\nid = "bench"\nsource = "mjpeg"\nurl = "{upstream}"\n')
            config.close()
            command = proxy_command(config.name, server_port, "uvloop" if target == "proxy-uvloop" else "asyncio")
            path = "/cameras/bench/stream.mjpg"
        else:
            command = [sys.executable, str(BENCH / "reference_relay.py"), "--port", str(server_port)]
            command += ["--upstream", upstream]
            path = "/stream.mjpg"
        server = subprocess.Popen(pinned(0, command), cwd=ROOT)
        try:
            wait_port(server_port)
            time.sleep(1.0)
            rss_idle, _ = rss_kib(server.pid)
            url = f"http://127.0.0.1:{server_port}{path}"
            slow_viewers = []
            for _ in range(slow):
                slow_viewers.append(subprocess.Popen(pinned(1, [sys.executable, str(BENCH / "slow_viewer.py"), url])))
            load_command = [sys.executable, str(BENCH / "loadgen.py"), "--url", url]
            load = subprocess.Popen(
                pinned(1, [*load_command, "--viewers", str(viewers), "--seconds", str(seconds)]),
                stdout=subprocess.PIPE,
                text=True,
            )
            assert load.stdout is not None
            assert load.stdout.readline().strip() == "recording"
            cpu0, t0 = cpu_s(server.pid), time.monotonic()
            assert load.stdout.readline().strip() == "done"
            cpu1, t1 = cpu_s(server.pid), time.monotonic()
            rss, hwm = rss_kib(server.pid)
            summary = json.loads(load.stdout.readline())
            load.wait(30)
            for process in slow_viewers:
                process.terminate()
                process.wait(10)
        finally:
            server.terminate()
            server.wait(10)
    finally:
        camera.terminate()
        camera.wait(10)
        if config is not None:
            os.unlink(config.name)
    cpu = cpu1 - cpu0
    summary.update(
        target=target,
        fps=fps,
        size=size,
        slow=slow,
        server_cpu_percent=100 * cpu / (t1 - t0),
        viewer_frames_per_cpu_s=summary["frames"] / cpu if cpu else float("inf"),
        rss_kib=rss,
        peak_rss_kib=hwm,
        kib_per_viewer=(rss - rss_idle) / viewers,
    )
    return summary


def row(result: dict, reference: dict | None) -> str:
    ratio = (
        f"{result['viewer_frames_per_cpu_s'] / reference['viewer_frames_per_cpu_s']:.2f}"
        if reference and result["target"] != "reference"
        else ""
    )
    return (
        f"| {result['target']} | {result['size']} | {result['fps']:g} | {result['viewers']}"
        f"{' + ' + str(result['slow']) + ' slow' if result['slow'] else ''} | {result['connected']} "
        f"| {result['fps_median']:.2f} / {result['fps_min']:.2f} | {result['latency_p50_ms']:.1f} / "
        f"{result['latency_p99_ms']:.1f} | {result['gaps']} | {result['server_cpu_percent']:.0f} % "
        f"| {result['viewer_frames_per_cpu_s']:,.0f} | {ratio} | {result['kib_per_viewer']:.1f} "
        f"| {result['peak_rss_kib'] / 1024:.0f} | {result['loadgen_cpu_percent']:.0f} % |"
    )


HEADER = (
    "| server | frames | fps | viewers | connected | viewer fps median / min | latency p50 / p99 ms | gaps "
    "| server CPU | viewer-frames per CPU-s | ratio to reference | KiB per viewer | peak RSS MiB "
    "| load generator CPU |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, nargs="*", default=[10, 100, 1000, 2000, 5000])
    parser.add_argument("--fps", type=float, nargs="*", default=[4.0, 25.0])
    parser.add_argument("--size", nargs="*", default=["1280x720"])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--slow", type=int, default=0, help="also run this many viewers reading 20 kB/s")
    parser.add_argument(
        "--targets",
        nargs="*",
        default=["reference", "proxy"],
        choices=("reference", "proxy", "proxy-uvloop"),
        help="proxy runs on asyncio's own loop, proxy-uvloop on uvloop",
    )
    args = parser.parse_args()
    print(HEADER, flush=True)
    for size in args.size:
        for fps in args.fps:
            for viewers in args.viewers:
                reference = None
                for target in args.targets:
                    result = run_point(target, viewers, fps, size, args.seconds, args.slow)
                    if target == "reference":
                        reference = result
                    print(row(result, reference), flush=True)
                    with open(BENCH / "results.jsonl", "a") as out:
                        out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
