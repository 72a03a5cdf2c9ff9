"""One contender over some files, in its own process: `contenders.py NAME FILE...`.

Prints one JSON line: the seconds each file took and the process's peak resident memory.
Start-up is not timed: a small file of the same kind goes through first (a worker imports its
libraries once, not once per asset); each file is then timed from opening it to the last
encoded byte.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from domain.assets import media  # noqa: E402
from domain.assets.media.renditions import encode  # noqa: E402
from domain.assets.media.video import poster_time  # noqa: E402

PRESETS = media.DEFAULT_PRESETS
Image.MAX_IMAGE_PIXELS = None  # as processing.py does; our own limit is what refuses bombs


def ours(path: Path) -> int:
    """Depot: analysis (metadata, verdicts) and every default rendition."""
    _, renditions = media.process(path, filename=path.name)
    return sum(rendition.size for rendition in renditions)


def naive(path: Path) -> int:
    """The obvious way: for each preset, decode the whole picture and resize it with Pillow."""
    total = 0
    for preset in PRESETS:
        picture = _naive_picture(path)
        picture.thumbnail((preset.max_side, preset.max_side), Image.Resampling.LANCZOS, None)
        total += len(encode(picture, preset))  # the same encoder settings as ours
    return total


def _naive_picture(path: Path) -> Image.Image:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import pypdfium2 as pdfium

        document = pdfium.PdfDocument(str(path))
        # A print-quality page (144 dpi), as a viewer would draw it, then resized.
        image = document[0].render(scale=2).to_pil().convert("RGB")
        document.close()
        return image
    if suffix in (".mp4", ".mov", ".mkv", ".webm"):
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            at = poster_time(float(container.duration or 0) / av.time_base)
            # Decode from the start up to the poster's time, the full-size frame to RGB.
            for frame in container.decode(stream):
                if frame.time is None or frame.time >= at:
                    return frame.to_image()
        raise RuntimeError("no frame")
    image = Image.open(path)
    image.load()  # the whole picture, at full size: no draft, no reduce
    image = ImageOps.exif_transpose(image)
    return image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")


def _peak_kib() -> int:
    # VmHWM, not ru_maxrss: see README (ru_maxrss inherits the spawning process's peak).
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) if match else -1


def _warm_up(contender: Any, suffix: str) -> None:
    from tests.domain.media import corpus

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"warm-up{suffix}"
        if suffix == ".pdf":
            corpus.pdf(path, ["warm-up"], title="w", author="w")
        elif suffix == ".mp4":
            corpus.video(path, seconds=1, width=64, height=48)
        elif suffix == ".tif":
            corpus.tiff(path, 64, 48)
        else:
            corpus.photo(64, 48).save(path)
        contender(path)


def main(argv: list[str]) -> None:
    contender = {"ours": ours, "naive": naive}[argv[0]]
    _warm_up(contender, Path(argv[1]).suffix.lower())
    seconds: list[float] = []
    output_bytes = 0
    for name in argv[1:]:
        started = time.perf_counter()
        output_bytes += contender(Path(name))
        seconds.append(time.perf_counter() - started)
    result: dict[str, Any] = {"seconds": seconds, "peak_kib": _peak_kib(), "bytes": output_bytes}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
