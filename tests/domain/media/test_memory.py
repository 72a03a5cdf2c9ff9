"""The bounded-memory promise: peak RSS of a process doing the work, measured by the kernel.

Each case runs in its own child process and reports its own VmHWM (the high-water mark of its
resident memory, /proc/self/status). Not ru_maxrss: Linux carries the spawning process's
high-water mark into a child's ru_maxrss at exec (vfork or fork alike), so a child started from
a pytest process that has grown to 250 MB reports at least 250 MB whatever it does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.domain.media import corpus

ROOT = Path(__file__).resolve().parents[3]
LIMIT_MB = 300
_PEAK = """
import re
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)))
"""
_CHILD = (
    """
import sys
from pathlib import Path
from domain.assets import media
analysis, renditions = media.process(Path(sys.argv[1]))
print(analysis.content_type, analysis.metadata.get("duration"), len(renditions))
"""
    + _PEAK
)
_NAIVE = (
    """
import sys
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
with Image.open(sys.argv[1]) as image:
    image.load()
    image.convert("RGB").resize((1024, 1024))
"""
    + _PEAK
)


def _peak_mb(script: str, path: Path) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    *output, peak_kib = done.stdout.split("\n")[:-1]
    return int(peak_kib) / 1024, "\n".join(output)


def test_a_200_mb_tiff_is_rendered_in_a_fraction_of_its_size(tmp_path: Path) -> None:
    # 7000 x 7000 x 4 samples, uncompressed: 196 MB on disk, 49 MP (inside the default limit).
    path = corpus.tiff(tmp_path / "scan.tif", 7000, 7000, samples=4, rows_per_strip=16)
    assert path.stat().st_size > 195_000_000
    ours, output = _peak_mb(_CHILD, path)
    assert output.split()[::2] == ["image/tiff", "3"]
    naive, _ = _peak_mb(_NAIVE, path)
    assert ours < LIMIT_MB
    assert ours < 150, f"peak {ours:.0f} MB"  # a full decode alone needs 196 MB
    assert naive > 2 * ours, f"naive {naive:.0f} MB, ours {ours:.0f} MB"


def test_video_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    short = corpus.long_video(tmp_path / "short.mp4", seconds=10)
    long = corpus.long_video(tmp_path / "long.mp4", seconds=2 * 3600)
    assert long.stat().st_size > 100 * short.stat().st_size
    short_peak, _ = _peak_mb(_CHILD, short)
    long_peak, output = _peak_mb(_CHILD, long)
    assert output.split() == ["video/mp4", "7200.0", "3"]
    assert long_peak < LIMIT_MB
    # The index of a two-hour file (180,000 frames) is a few MB; the frames are not kept.
    assert long_peak - short_peak < 25, f"short {short_peak:.0f} MB, long {long_peak:.0f} MB"
