"""Deleting a collection of N assets: Depot's batches against the per-asset deletion they
replaced, side by side in one run, on a private SeaweedFS and a database of the bench's own.

    .venv/bin/python bench/deletion/run.py                # 1,000 assets, 3 rounds (~2 min)
    .venv/bin/python bench/deletion/run.py --assets 200 --rounds 1 --baseline COMMIT

The baseline is the tree at --baseline (default: the last commit that deleted one asset at a
time), extracted with `git archive`; each contender runs measure.py in a process of its own
with that tree first on PYTHONPATH, rounds alternating which goes first. Writes
results/latest.md and results/latest.json; drops its database and deletes its Redis keys.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import SeaweedS3, delete_redis_keys  # noqa: E402

# The last commit whose collection.delete job deleted one asset at a time.
PER_ASSET = "474d185"
PG = "postgresql://postgres@127.0.0.1:5432"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=PER_ASSET)
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    database = f"depot_bench_deletion_{run_id}"
    with tempfile.TemporaryDirectory(prefix="depot-bench-deletion-") as scratch:
        baseline = Path(scratch) / "baseline"
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        with SeaweedS3().start(scratch) as s3:
            bucket = f"depot-bench-deletion-{run_id}"
            s3.create_bucket(bucket)
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DATABASE_URL": f"{PG}/{database}",
                "REDIS_URL": "redis://127.0.0.1:6379/12",
                "REDIS_KEY_PREFIX": f"depot-bench-deletion-{run_id}",
                "DEPOT_QUEUE_PREFIX": f"depot-bench-deletion-{run_id}",
                **s3.depot_env(bucket),
                "DEPOT_VAR_DIR": str(Path(scratch) / "var"),
            }
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database], check=True)
            try:
                _run(sys.executable, "manage.py", "migrate", "-v0", cwd=ROOT, env=env)
                rows = _rounds(args, env, {"per-asset": baseline, "batches": ROOT})
            finally:
                subprocess.run(
                    ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", database],
                    check=False,
                )
                delete_redis_keys(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
    _report(args, rows)
    return 0


def _rounds(args: argparse.Namespace, env: dict[str, str], trees: dict[str, Path]) -> list[Any]:
    rows = []
    order = list(trees)
    for n in range(args.rounds):
        for label in order if n % 2 == 0 else order[::-1]:
            out = _run(
                sys.executable,
                str(HERE / "measure.py"),
                "--assets",
                str(args.assets),
                "--label",
                label,
                cwd=trees[label],
                env={**env, "PYTHONPATH": str(trees[label])},
            )
            row = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _run(*command: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout


def _report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    def median(label: str, key: str) -> float:
        return statistics.median(row[key] for row in rows if row["label"] == label)

    lines = [
        f"Collection of {args.assets:,} assets (an original and 2 renditions each), "
        f"{args.rounds} rounds, median; baseline {args.baseline}.",
        "",
        "| contender | seconds | ms per asset | SQL statements | S3 requests | all deleted |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label in ("per-asset", "batches"):
        mine = [row for row in rows if row["label"] == label]
        clean = all(
            r["state"] == "SUCCEEDED" and not r["objects_left"] and not r["rows_left"] for r in mine
        )
        seconds = median(label, "seconds")
        lines.append(
            f"| {label} | {seconds:.2f} | {seconds * 1000 / args.assets:.2f} | "
            f"{median(label, 'statements'):,.0f} | {median(label, 's3_requests'):,.0f} | "
            f"{'yes' if clean else 'NO'} |"
        )
    speedup = median("per-asset", "seconds") / median("batches", "seconds")
    lines += ["", f"Batches take 1/{speedup:.1f} of the per-asset time ({speedup:.1f}x faster)."]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.md").write_text("\n".join(lines) + "\n")
    (HERE / "results" / "latest.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
