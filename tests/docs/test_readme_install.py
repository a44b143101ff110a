"""The README's install lines: a line that installs torch from an index installs torchaudio from
the same index, in the same command.

A torchaudio taken from another index (the default one, pulled in later by ``pip install -e .``)
is built against another torch: its native library then fails to load (``OSError ...
libc10_cuda.so``), and before issue 18 that broke ``avrobust --help``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pip_installs(text: str) -> list[tuple[str, list[str], str | None]]:
    """``(command, packages, index url)`` of every ``pip install`` command in ``text`` (commands
    joined by ``&&`` or ``;`` are split; inline code and fenced blocks alike)."""
    found = []
    for line in text.splitlines():
        for part in re.split(r"&&|;|`", line):
            words = shlex.split(part.split("#")[0]) if "pip install" in part else []
            if words[:2] != ["pip", "install"]:
                continue
            index = None
            packages = []
            rest = iter(words[2:])
            for word in rest:
                if word in ("--index-url", "-i"):
                    index = next(rest, None)
                elif word.startswith("--index-url="):
                    index = word.split("=", 1)[1]
                elif not word.startswith("-"):
                    packages.append(re.split(r"[<>=!\[]", word)[0])
            found.append((part.strip(), packages, index))
    return found


def test_the_reader_finds_pip_commands() -> None:
    """The reader itself, on lines written here (so the README test cannot pass by finding
    nothing)."""
    text = "pip install torch --index-url https://x/cpu\nfoo && pip install -e '.[plots]' && bar"
    assert pip_installs(text) == [
        ("pip install torch --index-url https://x/cpu", ["torch"], "https://x/cpu"),
        ("pip install -e '.[plots]'", ["."], None),
    ]


def test_torch_from_an_index_comes_with_torchaudio_from_it() -> None:
    commands = pip_installs((ROOT / "README.md").read_text())
    from_index = [(c, p, i) for c, p, i in commands if i is not None and "torch" in p]
    assert from_index, "the README lost its CPU install line"
    for command, packages, _ in from_index:
        assert "torchaudio" in packages, (
            f"installs torch from an index without torchaudio: {command}"
        )


@pytest.mark.parametrize(
    "line",
    [
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",
        "pip install torch --index-url=https://download.pytorch.org/whl/cpu && pip install torchaudio",
    ],
)
def test_the_old_recipes_would_fail_this_check(line: str) -> None:
    """The README's recipe before issue 18 (and torchaudio from the default index after it)."""
    bad = [c for c, p, i in pip_installs(line) if i is not None and "torch" in p]
    assert bad and all("torchaudio" not in pip_installs(c)[0][1] for c in bad)
