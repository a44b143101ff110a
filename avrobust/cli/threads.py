"""How many torch threads ``avrobust demo`` and ``avrobust evaluate`` use.

On a busy machine, torch's default (one thread per core) is the worst choice: each parallel op
waits for its slowest thread, and a thread that the scheduler has set aside for another process
stalls the whole op. Measured on a 2-core machine with two busy-loop processes beside it, the
demo's test preset took 4.6x its idle time with two threads and 1.5x with one
(``benchmarks/busy_machine.py``, ``docs/performance.md``). So the commands take

    threads = max(1, usable - round(load of the other processes on those CPUs))

where ``usable`` is the least of: the CPUs this process may run on (``os.sched_getaffinity``),
the cgroup CPU quota rounded up (``cpu.max`` or ``cpu.cfs_quota_us``), and torch's current
thread count (so ``OMP_NUM_THREADS`` and an earlier ``torch.set_num_threads`` still cap it).
The others' load is the larger of the 1-minute load average (slow to follow a load that has
just started or ended) and the busy share of our CPUs sampled over a quarter of a second (quick,
but a snapshot), both in CPUs. ``--threads N`` overrides the choice.

The choice changes numbers, not just speed: floating-point sums depend on the thread count, so
a run with another count trains other models. Pass ``--threads`` for reruns that must match.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Machine",
    "ThreadChoice",
    "choose_threads",
    "parse_cpu_max",
    "parse_proc_stat",
    "read_machine",
]

_CPU_MAX = ("/sys/fs/cgroup/cpu.max",)
_CFS = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


@dataclass(frozen=True)
class Machine:
    """What the thread choice looks at, read by :func:`read_machine` (tests pass fake ones).

    Args:
        affinity: number of CPUs this process may run on (None: unknown).
        quota: cgroup CPU quota in CPUs, e.g. 1.5 (None: no quota or unknown).
        torch_threads: torch's current intra-op thread count (its default at start-up).
        load: load of the other processes on the CPUs of ``affinity`` (or on all the machine's
            CPUs when the affinity is unknown), in CPUs: 1.0 is one busy process (None:
            unknown).
    """

    affinity: int | None
    quota: float | None
    torch_threads: int
    load: float | None


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count chosen, and why.

    Args:
        threads: the torch intra-op thread count to use, >= 1.
        usable: the CPUs this process may use (affinity, quota and torch's count), >= 1.
        load: the other processes' load taken into account, in CPUs (None: unknown or forced).
        forced: True when ``--threads`` gave the count.
    """

    threads: int
    usable: int
    load: float | None
    forced: bool

    def line(self) -> str:
        """One line for stderr, e.g. ``"using 1 thread of 2 (load 5.8; --threads N
        overrides)"``."""
        noun = "thread" if self.threads == 1 else "threads"
        head = f"using {self.threads} {noun} of {self.usable}"
        if self.forced:
            return f"{head} (--threads {self.threads})"
        load = "load unknown" if self.load is None else f"load {self.load:.1f}"
        return f"{head} ({load}; --threads N overrides)"


def _usable(machine: Machine) -> int:
    usable = max(1, int(machine.torch_threads))
    if machine.affinity is not None:
        usable = min(usable, max(1, int(machine.affinity)))
    if machine.quota is not None and math.isfinite(machine.quota) and machine.quota > 0:
        usable = min(usable, max(1, math.ceil(machine.quota)))
    return usable


def choose_threads(requested: int | None, machine: Machine) -> ThreadChoice:
    """The thread count for this run: ``requested`` (``--threads``) when given, else the usable
    CPUs minus the others' rounded load, at least 1 and at most the usable CPUs.

    Args:
        requested: the ``--threads`` value, or None to choose.
        machine: what the choice looks at (see :class:`Machine`).

    Returns:
        The :class:`ThreadChoice`.
    """
    usable = _usable(machine)
    if requested is not None:
        return ThreadChoice(int(requested), usable, None, forced=True)
    load = machine.load
    if load is None or math.isnan(load):
        return ThreadChoice(usable, usable, None, forced=False)
    load = max(0.0, load)
    # the others' load on our share when a quota limits us to part of the CPUs we may run on
    seen_cpus = max(machine.affinity or usable, usable)
    others = min(float(usable), load * usable / seen_cpus)
    threads = usable - math.floor(others + 0.5)
    return ThreadChoice(max(1, min(usable, threads)), usable, load, forced=False)


def parse_cpu_max(text: str) -> float | None:
    """The CPU quota, in CPUs, in the text of a cgroup-v2 ``cpu.max`` (``"quota period"``, or
    ``"max period"`` for none); None when there is none or the text is unreadable."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cpu_lines(text: str) -> dict[str, tuple[int, int]]:
    """``{"cpu": (busy, total), "cpu0": ...}`` in clock ticks from ``/proc/stat``; idle and
    iowait count as idle."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu"):
            continue
        try:
            ticks = [int(f) for f in fields[1:9]]
        except ValueError:
            continue
        if len(ticks) >= 4:
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            out[fields[0]] = (sum(ticks) - idle, sum(ticks))
    return out


def parse_proc_stat(before: str, after: str, cpus: Iterable[int] | None) -> float | None:
    """The busy CPUs (e.g. 1.0 = one CPU fully busy) among ``cpus`` between two snapshots of
    ``/proc/stat``; with ``cpus`` None, over the whole machine (the ``cpu`` line times the
    number of ``cpuN`` lines). None when the snapshots say nothing (unreadable, no time passed).
    """
    first, second = _cpu_lines(before), _cpu_lines(after)
    names = ["cpu"] if cpus is None else [f"cpu{c}" for c in cpus]
    names = [n for n in names if n in first and n in second]
    if not names:
        return None
    busy = total = 0
    for name in names:
        busy += second[name][0] - first[name][0]
        total += second[name][1] - first[name][1]
    if total <= 0:
        return None
    per_cpu = min(1.0, max(0.0, busy / total))
    count = len(names) if cpus is not None else sum(n[3:].isdigit() for n in second)
    return per_cpu * count


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return ""


def _quota() -> float | None:
    for path in _CPU_MAX:
        quota = parse_cpu_max(_read(path))
        if quota is not None:
            return quota
    quota_us, period_us = (_read(path).strip() for path in _CFS)  # cgroup v1; -1: no quota
    return None if quota_us.startswith("-") else parse_cpu_max(f"{quota_us} {period_us}")


def _affinity() -> set[int] | None:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    try:
        return set(getter(0))
    except OSError:
        return None


def _load(cpus: set[int] | None, sample_s: float) -> float | None:
    """The others' load on ``cpus`` (or the machine), in CPUs: the larger of the 1-minute load
    average (scaled to those CPUs) and their busy share over ``sample_s`` seconds."""
    n_machine = os.cpu_count() or 1
    n_ours = len(cpus) if cpus else n_machine
    loads = []
    try:
        loads.append(os.getloadavg()[0] * n_ours / n_machine)
    except (OSError, AttributeError):
        pass
    before = _read("/proc/stat")
    if before and sample_s > 0:
        time.sleep(sample_s)
        busy = parse_proc_stat(before, _read("/proc/stat"), cpus)
        if busy is not None:
            loads.append(busy)
    return max(loads) if loads else None


def read_machine(*, with_load: bool = True, sample_s: float = 0.25) -> Machine:
    """Read this machine: affinity, cgroup quota, torch's thread count and the others' load
    (sampling ``/proc/stat`` for ``sample_s`` seconds where it exists). The load is not read
    without ``with_load``, nor when torch already uses one thread (nothing to choose)."""
    import torch

    cpus = _affinity()
    current = torch.get_num_threads()
    return Machine(
        affinity=len(cpus) if cpus else None,
        quota=_quota(),
        torch_threads=current,
        load=_load(cpus, sample_s) if with_load and current > 1 else None,
    )
