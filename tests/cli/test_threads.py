"""How ``avrobust demo`` and ``avrobust evaluate`` choose their torch thread count
(:mod:`avrobust.cli.threads`): from the CPUs the process may use, the cgroup CPU quota and the
load of other processes, with ``--threads`` as the override. No timing is asserted here;
``benchmarks/busy_machine.py`` measures what the choice buys."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import avrobust.cli
import avrobust.cli.demo
import avrobust.cli.threads as threads
from avrobust.cli import main
from avrobust.cli.threads import Machine, choose_threads, parse_cpu_max, parse_proc_stat


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (Machine(affinity=2, quota=None, torch_threads=2, load=0.0), 2),  # idle: all of them
        (Machine(affinity=2, quota=None, torch_threads=2, load=5.8), 1),  # the case
        (Machine(affinity=2, quota=None, torch_threads=2, load=1.0), 1),  # one busy neighbour
        (Machine(affinity=2, quota=None, torch_threads=2, load=0.4), 2),  # rounds to 0 others
        (Machine(affinity=8, quota=None, torch_threads=8, load=3.0), 5),  # the free share
        (Machine(affinity=8, quota=2.5, torch_threads=8, load=0.0), 3),  # quota 2.5 CPUs -> 3
        (Machine(affinity=8, quota=None, torch_threads=4, load=0.0), 4),  # torch's own cap
        (Machine(affinity=None, quota=None, torch_threads=4, load=None), 4),  # nothing known
        (Machine(affinity=4, quota=None, torch_threads=4, load=None), 4),  # load unknown
    ],
)
def test_choice_from_affinity_quota_and_load(machine, expected) -> None:
    """The automatic choice is the usable CPUs (affinity, cgroup quota rounded up, torch's
    current count, whichever is least) minus the rounded load of the others, at least 1."""
    choice = choose_threads(None, machine)
    assert choice.threads == expected
    assert not choice.forced


def test_choice_never_below_one_nor_above_the_usable_cpus() -> None:
    """Over a grid of affinities, quotas, torch counts and loads (including nonsense: negative,
    NaN, infinite), the choice stays within [1, usable CPUs]."""
    loads = [None, -3.0, 0.0, 0.49, 0.5, 1.5, 2.0, 7.0, 1e9, math.nan, math.inf]
    for aff, quota, cur, load in itertools.product(
        [None, 1, 2, 3, 16], [None, 0.01, 0.5, 1.0, 2.5, 64.0], [1, 2, 8], loads
    ):
        machine = Machine(affinity=aff, quota=quota, torch_threads=cur, load=load)
        choice = choose_threads(None, machine)
        assert 1 <= choice.threads <= choice.usable <= cur, (machine, choice)
        if aff is not None:
            assert choice.usable <= aff
        if quota is not None:
            assert choice.usable <= max(1, math.ceil(quota))


def test_threads_option_overrides_the_choice() -> None:
    """``--threads N`` wins over the load, even above the usable CPUs (the user's call)."""
    busy = Machine(affinity=2, quota=None, torch_threads=2, load=6.0)
    for n in (1, 2, 3):
        choice = choose_threads(n, busy)
        assert choice.threads == n and choice.forced
        assert f"--threads {n}" in choice.line()


def test_the_line_says_what_was_chosen_and_why() -> None:
    """One line: the count, the usable CPUs and the others' load."""
    line = choose_threads(None, Machine(affinity=2, quota=None, torch_threads=2, load=5.8)).line()
    assert line.startswith("using 1 thread of 2") and "load 5.8" in line
    assert "\n" not in line
    line = choose_threads(None, Machine(affinity=4, quota=None, torch_threads=4, load=0)).line()
    assert line.startswith("using 4 threads of 4")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("", None),
        ("garbage", None),
        ("0 100000", None),
        ("100000 0", None),
    ],
)
def test_cgroup_cpu_max_is_read_as_cpus(text, expected) -> None:
    """``/sys/fs/cgroup/cpu.max`` ("quota period", or "max") is read as a number of CPUs;
    anything unreadable means "no quota"."""
    assert parse_cpu_max(text) == expected


def test_proc_stat_busy_fraction_of_our_cpus() -> None:
    """Two snapshots of ``/proc/stat`` give the busy share of the CPUs we may use: cpu0 fully
    busy and cpu1 idle between them is a load of 1.0 on {0, 1}, 0.0 on {1}; unreadable input
    gives None."""
    before = "cpu  0 0 0 0 0\ncpu0 100 0 0 100 0\ncpu1 100 0 0 100 0\nintr 1\n"
    after = "cpu  100 0 0 100 0\ncpu0 200 0 0 100 0\ncpu1 100 0 0 200 0\nintr 2\n"
    assert parse_proc_stat(before, after, {0, 1}) == pytest.approx(1.0)
    assert parse_proc_stat(before, after, {1}) == pytest.approx(0.0)
    assert parse_proc_stat(before, after, None) == pytest.approx(1.0)  # the "cpu" line, x2 CPUs
    assert parse_proc_stat("", after, {0}) is None
    assert parse_proc_stat(before, before, {0, 1}) is None  # no time passed


def _stub_run(seen: list[int]):
    def run(args, parser, say) -> int:
        seen.append(torch.get_num_threads())
        return 0

    return run


def test_cli_prints_and_applies_its_choice(monkeypatch, tmp_path, capsys) -> None:
    """Without ``--threads`` the command reads the machine, sets torch's threads to the choice
    before running, and says so in one line on stderr; with ``--quiet`` it says nothing."""
    seen: list[int] = []
    monkeypatch.setattr(avrobust.cli.demo, "run_demo_command", _stub_run(seen))
    fake = Machine(affinity=2, quota=None, torch_threads=2, load=5.8)
    monkeypatch.setattr(threads, "read_machine", lambda **_: fake)
    torch.set_num_threads(2)
    assert main(["demo", "--preset", "test", "--out", str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err
    assert seen == [1]
    assert err.count("\n") == 1 and "avrobust demo: using 1 thread of 2 (load 5.8" in err
    torch.set_num_threads(2)
    assert main(["demo", "--preset", "test", "--quiet", "--out", str(tmp_path / "d")]) == 0
    assert seen == [1, 1] and capsys.readouterr().err == ""


def test_cli_threads_option_overrides(monkeypatch, tmp_path, capsys) -> None:
    """``--threads N`` is applied as given on a busy machine, and the line names the option."""
    seen: list[int] = []
    monkeypatch.setattr(avrobust.cli.demo, "run_demo_command", _stub_run(seen))
    monkeypatch.setattr(
        threads,
        "read_machine",
        lambda **_: Machine(affinity=2, quota=None, torch_threads=2, load=6),
    )
    assert main(["demo", "--threads", "2", "--out", str(tmp_path / "d")]) == 0
    assert seen == [2]
    assert "using 2 threads of 2 (--threads 2)" in capsys.readouterr().err


def test_read_machine_reads_this_machine() -> None:
    """The real probe returns sane values here (whatever the load): torch's count, and an
    affinity and quota that are positive when known, and a load (it is read with two threads)."""
    torch.set_num_threads(2)
    machine = threads.read_machine(sample_s=0.05)
    assert machine.torch_threads == torch.get_num_threads()
    assert machine.affinity is None or machine.affinity >= 1
    assert machine.quota is None or machine.quota > 0
    assert machine.load is not None and machine.load >= 0  # getloadavg or /proc/stat exist here
    assert threads.read_machine(with_load=False).load is None
