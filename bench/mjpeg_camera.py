"""A fake MJPEG camera for load runs: real frames, each stamped with its sequence number
and send time in a JPEG comment segment (still a valid JPEG), served at a set rate.

    python bench/mjpeg_camera.py --port 18100 --fps 4 --size 1280x720

Serves ``/video.mjpg`` (multipart/x-mixed-replace with Content-Length) to any number of
clients on 127.0.0.1; each frame is sent to all of them at once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import struct
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FRAMES = sorted((ROOT / "tests" / "data" / "frames" / "opencv-vtest-pets2009").glob("frame_*.jpg"))
TAG = b"MJPB"
"""Start of the comment payload: ``MJPB`` + 8-byte sequence number + 8-byte send time (both big-endian)."""
BOUNDARY = b"benchcam"


def load_frames(size: str) -> list[bytes]:
    """The real 768x576 frames, or the same scaled to ``size`` (``"WxH"``) with Pillow."""
    if size == "768x576":
        return [p.read_bytes() for p in FRAMES]
    width, height = (int(v) for v in size.split("x"))
    frames = []
    for path in FRAMES:
        out = io.BytesIO()
        Image.open(path).resize((width, height), Image.Resampling.LANCZOS).save(out, "JPEG", quality=85)
        frames.append(out.getvalue())
    return frames


def stamp(jpeg: bytes, seq: int, sent: float) -> bytes:
    """``jpeg`` with a COM segment right after SOI carrying ``seq`` and ``sent``."""
    payload = TAG + struct.pack(">qd", seq, sent)
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def read_stamp(data: bytes | bytearray | memoryview, at: int) -> tuple[int, float]:
    """(sequence number, send time) of the stamp whose TAG starts at ``at``."""
    return struct.unpack_from(">qd", data, at + len(TAG))


class Camera:
    def __init__(self, frames: list[bytes], fps: float) -> None:
        self.frames = frames
        self.fps = fps
        self.clients: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY + b"\r\n\r\n")
        self.clients.add(writer)

    async def run(self) -> None:
        seq = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            seq += 1
            await asyncio.sleep(max(0.0, start + seq / self.fps - loop.time()))
            jpeg = stamp(self.frames[seq % len(self.frames)], seq, time.time())
            part = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (BOUNDARY, len(jpeg), jpeg)
            for writer in list(self.clients):
                if writer.is_closing():
                    self.clients.discard(writer)
                elif writer.transport.get_write_buffer_size() < 4 * len(part):
                    writer.write(part)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--size", default="768x576", help="768x576 (the real frames) or WxH to scale them to")
    args = parser.parse_args()
    camera = Camera(load_frames(args.size), args.fps)
    server = await asyncio.start_server(camera.serve, "127.0.0.1", args.port)
    async with server:
        await camera.run()


if __name__ == "__main__":
    asyncio.run(main())
