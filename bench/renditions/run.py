"""Renditions benchmark: Depot's media package against naive Pillow, side by side, one run.

    .venv/bin/python bench/renditions/run.py            # the standard corpus, 3 rounds
    .venv/bin/python bench/renditions/run.py --big      # also a 196 MB TIFF and a 2 GB video
    .venv/bin/python bench/renditions/run.py --quick    # 1 round, fewer files (a smoke run)

The corpus is generated (tests/domain/media/corpus.py) into --work (default var/bench-renditions)
and reused when present. Each contender runs each group in its own process (contenders.py);
rounds alternate which contender goes first. Results: a Markdown table on stdout and in
bench/renditions/results/latest.md, raw figures in results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.domain.media import corpus  # noqa: E402

HERE = Path(__file__).resolve().parent
CONTENDERS = ("naive", "ours")


def build_corpus(work: Path, *, quick: bool, big: bool) -> dict[str, list[Path]]:
    work.mkdir(parents=True, exist_ok=True)
    jpegs = 2 if quick else 6
    groups: dict[str, list[Path]] = {
        "12 MP JPEG": [
            _make(work / f"photo-{i}.jpg", lambda p, i=i: _jpeg_12mp(p, i)) for i in range(jpegs)
        ],
        "12 MP PNG": [
            _make(work / "scan-rgb.png", lambda p: _png(p, "RGB")),
            _make(work / "scan-rgba.png", lambda p: _png(p, "RGBA")),
        ],
        "PDF": [
            _make(work / f"report-{pages}.pdf", lambda p, n=pages: _pdf(p, n))
            for pages in (1, 12, 40)
        ],
        "H.264 video, 10 s": [
            _make(work / "clip-1080p.mp4", lambda p: _video(p, 1920, 1080)),
            _make(work / "clip-720p.mp4", lambda p: _video(p, 1280, 720)),
        ],
    }
    if big:
        groups["TIFF, 196 MB"] = [
            _make(
                work / "scan-196mb.tif",
                lambda p: corpus.tiff(p, 7000, 7000, samples=4, rows_per_strip=16),
            )
        ]
        groups["video, 2 GB"] = [_make(work / "film-2gb.mp4", _video_2gb)]
    return groups


def _make(path: Path, make: Callable[[Path], object]) -> Path:
    if not path.exists():
        print(f"generating {path.name}", file=sys.stderr)
        partial = path.with_name(path.name + ".partial" + path.suffix)
        make(partial)
        partial.rename(path)
    return path


def _jpeg_12mp(path: Path, index: int) -> None:
    # Half are portrait shots stored sideways (EXIF orientation 6), as phones write them.
    image = corpus.photo(4000, 3000, seed=index)
    exif = corpus.exif_block(orientation=6 if index % 2 else 1, make="Bench", model="12MP")
    image.save(path, "JPEG", quality=92, exif=exif.tobytes())


def _png(path: Path, mode: str) -> None:
    corpus.photo(4000, 3000, seed=7).convert(mode).save(path, "PNG", compress_level=3)


def _pdf(path: Path, pages: int) -> None:
    text = [
        f"Page {n}: quarterly figures, revenue by region and product line." for n in range(pages)
    ]
    corpus.pdf(path, text, title="Benchmark report", author="Depot")


def _video(path: Path, width: int, height: int) -> None:
    corpus.video(path, seconds=10, width=width, height=height, fps=25, gop=50)


def _video_2gb(path: Path) -> None:
    corpus.long_video(path, seconds=0, width=1280, height=720, crf=23, target_bytes=2_050_000_000)


def run_group(name: str, files: list[Path], rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {contender: [] for contender in CONTENDERS}
    for round_index in range(rounds):
        order = CONTENDERS if round_index % 2 == 0 else tuple(reversed(CONTENDERS))
        for contender in order:
            done = subprocess.run(
                [sys.executable, str(HERE / "contenders.py"), contender, *map(str, files)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{contender} failed on {name}:\n{done.stderr}")
            runs[contender].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary: dict[str, Any] = {"group": name, "assets": len(files), "rounds": rounds}
    for contender, results in runs.items():
        per_asset = [seconds for result in results for seconds in result["seconds"]]
        summary[contender] = {
            "median_s": statistics.median(per_asset),
            "mean_s": statistics.fmean(per_asset),
            "peak_mb": max(result["peak_kib"] for result in results) / 1024,
            "bytes": results[0]["bytes"],
        }
    summary["speedup"] = summary["naive"]["median_s"] / summary["ours"]["median_s"]
    return summary


def table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| corpus | assets | naive s/asset | ours s/asset | speed-up | naive peak RSS | "
        "ours peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summaries:
        naive, ours = row["naive"], row["ours"]
        lines.append(
            f"| {row['group']} | {row['assets']} | {naive['median_s']:.3f} | "
            f"{ours['median_s']:.3f} | **{row['speedup']:.1f}x** | {naive['peak_mb']:.0f} MB | "
            f"{ours['peak_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-renditions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--big", action="store_true")
    options = parser.parse_args()
    rounds = 1 if options.quick else options.rounds
    groups = build_corpus(options.work, quick=options.quick, big=options.big)
    summaries = []
    for name, files in groups.items():
        print(f"running {name} ({len(files)} files, {rounds} rounds)", file=sys.stderr)
        summaries.append(run_group(name, files, rounds))
    header = (
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {rounds} round(s), median seconds per asset "
        "(all three default presets), peak RSS = the contender process's VmHWM."
    )
    report = f"{header}\n\n{table(summaries)}\n"
    print(report)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(report)
    (results / "latest.json").write_text(json.dumps(summaries, indent=2) + "\n")


if __name__ == "__main__":
    main()
