"""The resize benchmark (issue 15, item 4): what ``?width=`` costs, per frame.

    python bench/resize.py                                    # both parts, 1280x720 and 1920x1080 (about 4 minutes)
    python bench/resize.py --parts function --sizes 1280x720 --repeats 5
    python bench/resize.py --parts proxy --seconds 30

1. function: ``resize_jpeg`` alone, CPU milliseconds per frame (the process's CPU time over
   every call, one thread), for each rung, on the real frames scaled to each size as
   ``bench/mjpeg_camera.py`` does (quality 85), as baseline and as progressive JPEGs.
2. proxy: the proxy's CPU per camera frame (CPU seconds of the whole process, resize
   threads included, over the window, divided by the frames it received), all on
   127.0.0.1 as ``bench/run.py`` does (the proxy pinned to CPU 0; the fake camera at
   ``--fps`` and the viewers on CPU 1): one viewer of the original stream, one viewer of
   each rung, and ``--many`` viewers of one rung. Viewers read and count every byte.

Prints Markdown table rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mjpeg_camera import load_frames  # noqa: E402

from run import BENCH, ROOT, SERVER_LIMITS, cpu_s, free_port, pinned, proxy_command, wait_port  # noqa: E402

sys.path.insert(0, str(ROOT))
from mjpeg_proxy.pictures.resize import resize_jpeg  # noqa: E402

WIDTHS = (320, 640, 1280)
CAMERA = "bench"


# 1. The function alone ---------------------------------------------------------------------------


def progressive(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as image:
        image.save(out, "JPEG", quality=85, progressive=True)
    return out.getvalue()


def function_ms(frames: list[bytes], width: int, repeats: int) -> float:
    """CPU milliseconds per call of ``resize_jpeg(frame, width)``, over ``repeats`` rounds of ``frames``."""
    for jpeg in frames[:3]:
        resize_jpeg(jpeg, width)  # warm up: imports, libjpeg's tables
    start = time.process_time()
    for _ in range(repeats):
        for jpeg in frames:
            resize_jpeg(jpeg, width)
    return (time.process_time() - start) * 1000 / (repeats * len(frames))


def function_rows(sizes: list[str], repeats: int) -> None:
    print("| frame size | input | " + " | ".join(f"to {width} px" for width in WIDTHS) + " | output KB at 320 / 640 |")
    print("| --- | --- |" + " --- |" * len(WIDTHS) + " --- |")
    for size in sizes:
        baseline = load_frames(size)
        for name, frames in (("baseline", baseline), ("progressive", [progressive(jpeg) for jpeg in baseline])):
            cells = [
                f"{function_ms(frames, width, repeats):.1f} ms" if width < int(size.split("x")[0]) else "passed as is"
                for width in WIDTHS
            ]
            out = [sum(len(resize_jpeg(jpeg, width)) for jpeg in frames) / len(frames) / 1000 for width in (320, 640)]
            size_kb = sum(len(jpeg) for jpeg in frames) / len(frames) / 1000
            print(f"| {size} | {name} ({size_kb:.0f} KB) | {' | '.join(cells)} | {out[0]:.0f} / {out[1]:.0f} |")


# 2. The proxy under load -------------------------------------------------------------------------


class Viewers:
    """``count`` viewers of ``url`` on raw sockets (HTTP/1.0), each reading everything and counting parts."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.parts = [0] * count
        self.bytes = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def _view(self, index: int, port: int, path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        try:
            while data := await reader.read(1 << 18):
                self.bytes += len(data)
                self.parts[index] += data.count(b"Content-Type: image/jpeg")
        except ConnectionError:
            pass
        finally:
            writer.close()  # also when cancelled: the proxy sees the viewer leave (and drops its rung)

    async def __aenter__(self) -> Viewers:
        port = int(self.url.split(":")[2].split("/")[0])
        path = "/" + self.url.split("/", 3)[3]
        self.tasks = [asyncio.create_task(self._view(index, port, path)) for index in range(self.count)]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def camera_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras/{CAMERA}", timeout=5) as answer:
        return json.loads(answer.read())


def wait_for_no_viewers(port: int, timeout_s: float = 20.0) -> None:
    """Wait until the proxy at ``port`` counts no viewer (the last point's have all left)."""
    deadline = time.monotonic() + timeout_s
    while camera_stats(port)["viewers"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the last point's viewers are still counted")
        time.sleep(0.2)


async def measure(proxy_pid: int, proxy_port: int, query: str, viewers: int, seconds: float) -> dict:
    """The proxy's CPU per camera frame with ``viewers`` viewers of the stream with ``query``, over ``seconds``."""
    url = f"http://127.0.0.1:{proxy_port}/cameras/{CAMERA}/stream.mjpg{query}"
    async with Viewers(url, viewers) as watching:
        await asyncio.sleep(3)  # warm-up: every viewer connected, the rung made
        before, cpu0, t0 = camera_stats(proxy_port), cpu_s(proxy_pid), time.monotonic()
        parts0 = sum(watching.parts)
        await asyncio.sleep(seconds)
        after, cpu1, t1 = camera_stats(proxy_port), cpu_s(proxy_pid), time.monotonic()
        parts1 = sum(watching.parts)
    frames = after["frames_received"] - before["frames_received"]
    return {
        "frames": frames,
        "cpu_ms_per_frame": (cpu1 - cpu0) * 1000 / frames,
        "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
        "resized": after["frames_resized"] - before["frames_resized"],
        "viewer_fps": (parts1 - parts0) / viewers / (t1 - t0),
    }


def proxy_rows(sizes: list[str], fps: float, seconds: float, many: int, many_width: int) -> None:
    os.sched_setaffinity(0, {1})  # the viewers, with the camera; the proxy alone on CPU 0
    print("| frame size | viewers | proxy CPU per frame | of a core | resizes per frame | viewer fps |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        with contextlib.ExitStack() as stack:
            camera_port, proxy_port = free_port(), free_port()
            command = [sys.executable, str(BENCH / "mjpeg_camera.py"), "--port", str(camera_port), "--fps", str(fps)]
            camera = subprocess.Popen(pinned(1, [*command, "--size", size]))
            stack.callback(lambda process=camera: (process.terminate(), process.wait(10)))
            wait_port(camera_port)
            config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
            stack.callback(Path(config.name).unlink)
            url = f"http://127.0.0.1:{camera_port}/video.mjpg"
            config.write(
                f'{SERVER_LIMITS}[[cameras]]\nid = "{CAMERA}"\nsource = "mjpeg"\nurl = "{url}"\nalways_on = true\n'
            )
            config.close()
            proxy = subprocess.Popen(pinned(0, proxy_command(config.name, proxy_port)), cwd=ROOT)
            stack.callback(lambda process=proxy: (process.terminate(), process.wait(10)))
            wait_port(proxy_port)
            points = [("", 1, "1 of the original")]
            points += [(f"?width={width}", 1, f"1 at {width} px") for width in WIDTHS]
            points += [(f"?width={many_width}", many, f"{many} at {many_width} px")]
            for query, viewers, label in points:
                wait_for_no_viewers(proxy_port)
                result = asyncio.run(measure(proxy.pid, proxy_port, query, viewers, seconds))
                print(
                    f"| {size} | {label} | {result['cpu_ms_per_frame']:.1f} ms | {result['cpu_percent']:.1f} % "
                    f"| {result['resized'] / result['frames']:.2f} | {result['viewer_fps']:.2f} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="*", default=["function", "proxy"], choices=("function", "proxy"))
    parser.add_argument("--sizes", nargs="*", default=["1280x720", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the frames per rung (function part)")
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per point (proxy part)")
    parser.add_argument("--many", type=int, default=200, help="viewers of one rung in the last point")
    parser.add_argument("--many-width", type=int, default=640)
    args = parser.parse_args()
    if "function" in args.parts:
        function_rows(args.sizes, args.repeats)
        print()
    if "proxy" in args.parts:
        proxy_rows(args.sizes, args.fps, args.seconds, args.many, args.many_width)


if __name__ == "__main__":
    main()
