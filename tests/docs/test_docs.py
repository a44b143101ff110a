"""The docs cannot drift: their code blocks and the docstring examples run, and the site builds strictly."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import avrobust

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_python_blocks_of_each_page_run(page, tmp_path, monkeypatch):
    """All ```python blocks of a page run in order, in one namespace (as a reader would paste them),
    without a warning: a page's example must not show a reader an attack the library distrusts."""
    monkeypatch.chdir(tmp_path)
    warnings.simplefilter("error", UserWarning)
    blocks = BLOCK.findall(page.read_text())
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{page.name} block {i} failed: {exc!r}\n{code}")


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """The README's example (the attack with the ``MultimodalAttack(model, budgets, *, ...)``
    signature) runs as written, without a warning, and attacks within its budget."""
    monkeypatch.chdir(tmp_path)
    warnings.simplefilter("error", UserWarning)
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert blocks, "the README lost its python example"
    namespace: dict[str, object] = {"__name__": "docs_readme"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md[block {i}]", "exec"), namespace)
    result, inputs = namespace["result"], namespace["inputs"]
    delta = result.inputs["visual"] - inputs["visual"]  # type: ignore[attr-defined,index]
    assert 0 < float(delta.abs().max()) <= 0.5  # push_pull_budgets(5): eps_v = 0.5


def _modules() -> list[str]:
    names = ["avrobust"]
    for info in pkgutil.walk_packages(avrobust.__path__, "avrobust."):
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_quickstart_page_is_nonempty():
    assert len(BLOCK.findall((ROOT / "docs" / "quickstart.md").read_text())) >= 3


_HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None


def _build_strictly(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` at its default log level: ``-q`` would hide the warnings that
    strict mode turns into a failure, and the build would pass whatever the docstrings say."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.mark.slow
@pytest.mark.skipif(not _HAS_MKDOCS, reason="mkdocs is installed by the test extra")
def test_site_builds_strictly(tmp_path):
    proc = _build_strictly(ROOT, tmp_path / "site")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "WARNING" not in log, log
    assert (tmp_path / "site" / "api" / "index.html").exists()


@pytest.mark.skipif(not _HAS_MKDOCS, reason="mkdocs is installed by the test extra")
def test_strict_build_fails_on_a_warning(tmp_path):
    """The check above can fail: the same command on a site with a broken link exits non-zero."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("See [the missing page](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: broken\n")
    proc = _build_strictly(tmp_path, tmp_path / "site")
    assert proc.returncode != 0
    assert "missing.md" in proc.stdout + proc.stderr
