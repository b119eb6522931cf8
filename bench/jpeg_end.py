"""Cost of finding where each JPEG ends (``mjpeg_proxy.wire.jpeg.cut_jpeg``), on one core.

    python bench/jpeg_end.py

Runs once per frame from every upstream. Measured on the real frames in tests/data and on
1080p frames that Pillow makes from one of them (baseline, progressive, restart markers),
each whole and with 3000 bytes appended; prints microseconds per frame, GB/s walked and
the share of one core that 30 frames a second cost.
"""

from __future__ import annotations

import io
import sys
import timeit
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mjpeg_proxy.wire.jpeg import cut_jpeg  # noqa: E402

FRAMES = ROOT / "tests" / "data" / "frames"


def full_hd(**options: object) -> bytes:
    with Image.open(FRAMES / "opencv-vtest-pets2009" / "frame_001.jpg") as image:
        out = io.BytesIO()
        image.resize((1920, 1080)).save(out, "JPEG", **options)
        return out.getvalue()


def cases() -> dict[str, list[bytes]]:
    found = {folder.name: [p.read_bytes() for p in sorted(folder.glob("*.jpg"))] for folder in sorted(FRAMES.iterdir())}
    found["1080p baseline q90"] = [full_hd(quality=90)]
    found["1080p 4:4:4 q98"] = [full_hd(quality=98, subsampling=0)]
    found["1080p progressive q90"] = [full_hd(quality=90, progressive=True)]
    found["1080p q90, restart marker every block"] = [full_hd(quality=90, restart_marker_blocks=1)]
    return found


def seconds_per_frame(jpegs: list[bytes], number: int) -> float:
    return timeit.timeit(lambda: [cut_jpeg(jpeg) for jpeg in jpegs], number=number) / number / len(jpegs)


def main() -> None:
    stale = (FRAMES / "opencv-vtest-pets2009" / "frame_002.jpg").read_bytes()[-3000:]
    print(f"{'frames':40} {'size':>8} {'whole':>16} {'+3000 B appended':>18} {'30 fps':>8}")
    for name, jpegs in cases().items():
        size = sum(map(len, jpegs)) / len(jpegs)
        number = max(20, int(200_000_000 / size / len(jpegs)))
        whole = seconds_per_frame(jpegs, number)
        junk = seconds_per_frame([jpeg + stale for jpeg in jpegs], number)
        print(
            f"{name:40} {size / 1000:6.0f} KB {whole * 1e6:7.1f} us {size / whole / 1e9:4.1f} GB/s"
            f" {junk * 1e6:9.1f} us {junk * 30 * 100:9.2f} %"
        )


if __name__ == "__main__":
    main()
