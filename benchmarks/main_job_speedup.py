"""Wall time of the default main job, before and after, measured side by side.

"Before" is a git revision of this repository (default: the last commit
before the scale-out/fast-trials work), checked out into a temporary git
worktree; "after" is the working tree. Both run ``privtune tune`` with the
built-in default config (20 trials, 3 confirmation retrains, digits) in the
same interpreter and virtual environment, alternately, so machine noise hits
both alike. The ratio of medians is the speed-up (goal: at least 3x).

    .venv/bin/python benchmarks/main_job_speedup.py            # 1 run each
    .venv/bin/python benchmarks/main_job_speedup.py --repeats 3 --before 555d9d0
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "555d9d0"  # main before the issue: "One home for checking a separate test split's labels"


def run_main_job(source: Path, out: Path) -> float:
    """Seconds for `privtune tune --out OUT` with the package imported from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "tune", "--out", str(out), "--quiet"],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 3):
        raise SystemExit(f"main job from {source} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds


def imported_from(source: Path, cwd: Path) -> str:
    """Where ``tuner`` is imported from with ``source`` first on the path (run outside the repo)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    code = "import tuner, pathlib; print(pathlib.Path(tuner.__file__).parent.parent)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"git revision measured as 'before' (default {BEFORE})")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each version, alternating (default 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="privtune-bench-") as tmp:
        worktree = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before],
            check=True, capture_output=True,
        )
        try:
            for source in (worktree, ROOT):  # the interpreter must import each version from its own tree
                if Path(imported_from(source, Path(tmp))).resolve() != source.resolve():
                    raise SystemExit(f"PYTHONPATH={source} does not take precedence over the installed package")
            times: dict[str, list[float]] = {"before": [], "after": []}
            for repeat in range(args.repeats):
                for label, source in (("before", worktree), ("after", ROOT)):
                    out = Path(tmp) / f"{label}-{repeat}" / "run"
                    out.parent.mkdir()
                    seconds = run_main_job(source, out)
                    times[label].append(seconds)
                    print(f"run {repeat + 1}/{args.repeats} {label:6s} {seconds:7.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)

    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    print()
    print("default main job (`privtune tune`, built-in digits config: 20 trials + 3 confirmation retrains)")
    print(f"  before ({args.before}): median {before:.1f} s of {times['before']}")
    print(f"  after  (working tree): median {after:.1f} s of {times['after']}")
    print(f"  speed-up before/after: {before / after:.2f}x  (goal >= 3.0)")


if __name__ == "__main__":
    main()
