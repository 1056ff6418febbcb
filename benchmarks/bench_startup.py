"""Start-up time: `import eigenshift`, `eigenshift --version`, and for every command its
`--help` and a refusal of a bad setting (exit code 2, before any work), and which heavy
libraries the CLI loads, for this tree and (optionally) a baseline tree side by side, runs
alternating.

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
# Per command: a setting it refuses before any work (a number out of range where it has one).
REFUSALS = {
    "info": ["info", "--dtype", "float8"],
    "score": ["score"],  # no text and no --file
    "data": ["data", "nothing"],
    "evaluate": ["evaluate", "--max-prompts", "0", "--out", "/tmp/x"],
    "report": ["report", "/nonexistent/run"],
    "sweep": ["sweep", "--ppl-limit", "-1", "--out", "/tmp/x"],
    "tune": ["tune", "--validation-prompts", "1", "--out", "/tmp/x"],
    "demo": ["demo", "--dtype", "float8"],
    "fit eigenshift": ["fit", "eigenshift", "--k", "-1", "--out", "/tmp/x"],
    "fit steer": ["fit", "steer", "--batch-size", "0", "--out", "/tmp/x"],
    "fit aura": ["fit", "aura", "--k", "-1", "--neurons", "x", "--out", "/tmp/x"],
    "explain": ["explain", "x", "--top", "0"],
    "export": ["export", "--intervention", "x", "--gguf-type", "q1", "--out", "/tmp/x"],
    "locate neurons": ["locate", "neurons", "--bootstrap", "-1", "--out", "/tmp/x"],
    "locate layers": ["locate", "layers", "--folds", "0", "--out", "/tmp/x"],
}
CLI = ("import sys; sys.argv = ['eigenshift', *{args!r}]\n"
       "from eigenshift.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
       "    sys.exit(e.code)")
for _name, _args in REFUSALS.items():
    PROBES[f"{_name} --help"] = CLI.format(args=[*_args[: 2 if _name.count(" ") else 1],
                                                 "--help"])
    PROBES[f"{_name} refusal"] = CLI.format(args=_args)


def run(src: Path, code: str, refusal: bool = False) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode != (2 if refusal else 0):
        raise SystemExit(f"{code!r} in {src} exited {done.returncode}: {done.stderr[-300:]!r}")
    return seconds


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
                times[name][probe].append(run(src, code, probe.endswith("refusal")))
    result: dict[str, object] = {"benchmark": "startup", "repeats": args.repeats}
    for name, src in trees.items():
        result[name] = {
            **{f"{p}_median_s": round(statistics.median(v), 3) for p, v in times[name].items()},
            "cli_loads": loaded(src),
        }
    for name in trees:
        slowest = max((p for p in PROBES if p not in ("import", "version")),
                      key=lambda p: statistics.median(times[name][p]))  # fmt: skip
        result[name]["slowest_command_probe"] = slowest  # type: ignore[index]
        result[name]["slowest_command_probe_s"] = round(  # type: ignore[index]
            statistics.median(times[name][slowest]), 3)
    if args.baseline:
        for probe in PROBES:
            key = f"{probe}_median_s"
            result[f"{probe}_ratio_baseline_over_current"] = round(
                result["baseline"][key] / result["current"][key], 2  # type: ignore[index]
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
