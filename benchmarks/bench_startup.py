"""Start-up time: `import eigenshift` and `eigenshift --version`, and which heavy libraries each
loads, for this tree and (optionally) a baseline tree side by side, runs alternating.

    git worktree add /tmp/eigenshift-before <commit>
    .venv/bin/python benchmarks/bench_startup.py --baseline /tmp/eigenshift-before/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"
PROBES = {
    "import": "import eigenshift",
    "version": "import sys; sys.argv = ['eigenshift', '--version']\n"
    "from eigenshift.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass",
}
HEAVY = ("sklearn", "matplotlib", "transformers", "torch")


def run(src: Path, code: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def loaded(src: Path) -> dict[str, bool]:
    code = f"import sys, eigenshift.cli; print([m in sys.modules for m in {HEAVY!r}])"
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return dict(zip(HEAVY, json.loads(out.stdout.decode().strip().lower()), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="src/ of another tree")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees = {"current": HERE} | ({"baseline": args.baseline} if args.baseline else {})
    times: dict[str, dict[str, list[float]]] = {t: {p: [] for p in PROBES} for t in trees}
    for src in trees.values():  # warm the file cache once
        run(src, PROBES["import"])
    for _ in range(args.repeats):
        for name, src in trees.items():
            for probe, code in PROBES.items():
                times[name][probe].append(run(src, code))
    result: dict[str, object] = {"benchmark": "startup", "repeats": args.repeats}
    for name, src in trees.items():
        result[name] = {
            **{f"{p}_median_s": round(statistics.median(v), 3) for p, v in times[name].items()},
            "cli_loads": loaded(src),
        }
    if args.baseline:
        for probe in PROBES:
            key = f"{probe}_median_s"
            result[f"{probe}_ratio_baseline_over_current"] = round(
                result["baseline"][key] / result["current"][key], 2  # type: ignore[index]
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
