"""Throughput of the upstream MJPEG reader on one core, fed from memory.

    python bench/reader.py [--chunk 65536] [--megabytes 400]

Builds a multipart stream of the real frames in tests/data (with and without
Content-Length) and feeds it to MultipartReader in fixed-size chunks, as a socket
would deliver it; prints MB/s of upstream parsed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mjpeg_proxy.wire.reader import MultipartReader  # noqa: E402

FRAMES = [p.read_bytes() for p in sorted((ROOT / "tests/data/frames/opencv-vtest-pets2009").glob("frame_*.jpg"))]


def stream(with_length: bool) -> bytes:
    parts = []
    for jpeg in FRAMES:
        length = b"Content-Length: %d\r\n" % len(jpeg) if with_length else b""
        parts.append(b"--myboundary\r\nContent-Type: image/jpeg\r\n" + length + b"\r\n" + jpeg + b"\r\n")
    return b"".join(parts)


def run(with_length: bool, chunk: int, megabytes: int) -> None:
    one = stream(with_length)
    repeats = max(1, megabytes * 1_000_000 // len(one))
    chunks = [one[i : i + chunk] for i in range(0, len(one), chunk)]
    reader = MultipartReader("myboundary", max_frame_bytes=16 << 20)
    frames = 0
    start = time.process_time()
    for _ in range(repeats):
        for piece in chunks:
            frames += len(reader.feed(piece))
    elapsed = time.process_time() - start
    total = len(one) * repeats
    label = "with Content-Length" if with_length else "without Content-Length"
    print(
        f"{label:>24}: {total / elapsed / 1e6:7.0f} MB/s, {frames / elapsed:7.0f} frames/s "
        f"({total / 1e6:.0f} MB in {chunk}-byte chunks, {elapsed:.2f} s CPU)"
    )
    assert frames == repeats * len(FRAMES) - 1 or frames == repeats * len(FRAMES), (frames, reader.stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk", type=int, default=65536)
    parser.add_argument("--megabytes", type=int, default=400)
    args = parser.parse_args()
    for with_length in (True, False):
        run(with_length, args.chunk, args.megabytes)


if __name__ == "__main__":
    main()
