"""The demo on a busy machine: ``avrobust demo`` with its default thread choice against forced
thread counts, idle and beside an artificial load.

Run from the repository root::

    python benchmarks/busy_machine.py                 # test preset, 2 busy loops, 2 repeats
    python benchmarks/busy_machine.py --loads 4 --preset quick --reps 1

Each run is a fresh ``python -m avrobust demo --preset P --no-plots --out <tmp>`` (so it pays
the imports, as a user does), timed with its wall clock. Variants: the default choice (no
``--threads``), ``--threads K`` with K = torch's default count (what the command did before it
chose), ``--threads 1``, and K threads with ``OMP_WAIT_POLICY=PASSIVE`` (OpenMP threads sleep
instead of spinning while they wait). Conditions: "idle" (no artificial load; whatever else
runs on the machine is reported as the background) and "loaded" (``--loads`` processes running
``while True: pass``, started ``--settle`` seconds before the first run so the load average has
begun to rise). Repeats are interleaved over the variants; medians are printed, with each
time's ratio to the default choice on the idle machine. Target (issue 13): loaded, default
choice, at most 2x idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from avrobust.cli.threads import parse_proc_stat


def background(seconds: float = 1.0) -> str:
    """The machine's load before the runs: the load averages and the busy CPUs over
    ``seconds``."""
    try:
        averages = "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        averages = "load average unknown"
    try:
        with open("/proc/stat") as f:
            before = f.read()
        time.sleep(seconds)
        with open("/proc/stat") as f:
            busy = parse_proc_stat(before, f.read(), None)
    except OSError:
        busy = None
    busy_text = "unknown" if busy is None else f"{busy:.2f}"
    return f"{averages}; busy CPUs over {seconds:g} s: {busy_text} of {os.cpu_count()}"


def run_demo(preset: str, threads: int | None, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one fresh demo run, and the thread line it printed."""
    argv = [sys.executable, "-m", "avrobust", "demo", "--preset", preset, "--no-plots"]
    if threads is not None:
        argv += ["--threads", str(threads)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [*argv, "--out", os.path.join(tmp, "demo")],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    said = [line for line in done.stderr.splitlines() if ": using " in line]
    return seconds, said[0].split(": ", 1)[1] if said else "?"


def variants(k: int) -> list[tuple[str, int | None, dict[str, str]]]:
    """(label, --threads, extra environment) of each variant."""
    return [
        ("default choice", None, {}),
        (f"--threads {k} (torch's default)", k, {}),
        ("--threads 1", 1, {}),
        (f"--threads {k}, OMP_WAIT_POLICY=PASSIVE", k, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ]


def measure(preset: str, reps: int, k: int) -> dict[str, tuple[list[float], set[str]]]:
    """Times and thread lines of every variant, ``reps`` interleaved rounds."""
    out: dict[str, tuple[list[float], set[str]]] = {v[0]: ([], set()) for v in variants(k)}
    for _ in range(reps):
        for label, threads, env in variants(k):
            seconds, said = run_demo(preset, threads, env)
            out[label][0].append(seconds)
            out[label][1].add(said)
            print(f"  {label:<42} {seconds:7.1f} s   {said}", flush=True)
    return out


def start_load(count: int) -> list[subprocess.Popen]:
    """``count`` busy-loop processes."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="test", help="demo preset (default: test)")
    parser.add_argument("--loads", type=int, default=2, help="busy-loop processes (default 2)")
    parser.add_argument("--reps", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of load before")
    args = parser.parse_args()
    k = torch.get_num_threads()
    print(f"torch {torch.__version__}, default threads {k}, {os.cpu_count()} CPUs")
    print(f"background before: {background()}")
    print("idle:")
    idle = measure(args.preset, args.reps, k)
    print(f"loaded ({args.loads} busy loops):")
    procs = start_load(args.loads)
    try:
        time.sleep(args.settle)
        print(f"  with the loops: {background()}")
        loaded = measure(args.preset, args.reps, k)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    print(f"background after: {background()}")
    base = statistics.median(idle["default choice"][0])
    print(f"\nmedians of {args.reps}; ratio = time / idle default choice ({base:.1f} s)")
    print(f"{'variant':<42} {'idle s':>7} {'ratio':>6} {'loaded s':>9} {'ratio':>6}")
    for label, _, _ in variants(k):
        t_idle, t_load = statistics.median(idle[label][0]), statistics.median(loaded[label][0])
        print(f"{label:<42} {t_idle:7.1f} {t_idle / base:6.2f} {t_load:9.1f} {t_load / base:6.2f}")
    chose = sorted(loaded["default choice"][1])
    print(f"\ndefault choice, loaded: {'; '.join(chose)}")
    print(f"default choice, idle: {'; '.join(sorted(idle['default choice'][1]))}")
    ratio = statistics.median(loaded["default choice"][0]) / base
    print(f"target loaded/idle <= 2.0 with the default choice: {ratio:.2f}")


if __name__ == "__main__":
    main()
