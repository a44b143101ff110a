"""The demo's work as jobs run by single-threaded workers (:func:`run_jobs`).

**Decided: one torch thread per job, parallel across jobs.** Every job (training one model run,
attacking one model run, the masking checks of one model) runs on one torch thread, in this
process when ``workers=1`` and in ``workers`` spawned worker processes otherwise. A CPU kernel
on one thread computes the same bits whichever process runs it, so the demo's models, attack
results and verdicts are the same for any worker count (a run with ``--threads 1`` and one with
``--threads 2`` agree exactly); and on the demo's tiny models two single-threaded processes do
more work per second than one process with two threads (intra-op threads idle on small
tensors). A job waits for the jobs named in its :attr:`Job.after`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from .._checks import check_int

__all__ = ["Job", "one_thread", "run_jobs"]


@dataclass(frozen=True)
class Job:
    """One unit of the demo's work.

    Attributes:
        name: a unique name, e.g. ``"train A run 2"`` (said when it fails).
        call: a module-level function (workers receive it by reference), called as
            ``call(**kwargs)``; its return value must pickle.
        kwargs: its keyword arguments (they must pickle).
        after: the names of the jobs that must finish first.
    """

    name: str
    call: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one torch thread, then restore the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_start() -> None:
    torch.set_num_threads(1)


def _check(jobs: Sequence[Job]) -> None:
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"jobs: expected unique names, got {names}")
    for job in jobs:
        missing = [a for a in job.after if a not in names]
        if missing:
            raise ValueError(f"jobs: {job.name!r} waits for unknown jobs {missing}")


def _ready(pending: list[Job], done: Mapping[str, Any]) -> list[Job]:
    return [j for j in pending if all(a in done for a in j.after)]


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 1,
    on_done: Callable[[Job, Any], None] | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` (each on one torch thread), each after the jobs it waits for.

    Args:
        jobs: the jobs, in the order to start them when several are ready.
        workers: ``1``: one after the other in this process; more: that many spawned worker
            processes (a script that runs the demo with ``workers > 1`` needs the usual
            ``if __name__ == "__main__":`` guard of :mod:`multiprocessing`).
        on_done: called in this process with each job and its result as it finishes.

    Returns:
        ``{job name: result}``.

    Raises:
        ValueError: repeated names, or a job waiting for an unknown one (or, through a cycle,
            for itself). A job's own error is raised as it is, after the other workers are
            stopped.
    """
    workers = check_int(workers, "workers", min_value=1)
    _check(jobs)
    pending, done = list(jobs), dict[str, Any]()
    if workers == 1:
        with one_thread():
            while pending:
                ready = _ready(pending, done)
                if not ready:
                    raise ValueError(f"jobs: {[j.name for j in pending]} wait for each other")
                job = ready[0]
                pending.remove(job)
                done[job.name] = job.call(**job.kwargs)
                if on_done is not None:
                    on_done(job, done[job.name])
        return done
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)
    running: dict[Future[Any], Job] = {}
    try:
        while pending or running:
            for job in _ready(pending, done):
                pending.remove(job)
                running[pool.submit(job.call, **job.kwargs)] = job
            if not running:
                raise ValueError(f"jobs: {[j.name for j in pending]} wait for each other")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                done[job.name] = future.result()
                if on_done is not None:
                    on_done(job, done[job.name])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done
