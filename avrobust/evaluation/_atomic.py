"""Atomic writes of the results file, through symbolic links, and the temporaries they leave.

:func:`atomic_write` replaces a file through a temporary file in the same folder and
``os.replace``: a kill or a full disk leaves the old file or the new one, never a cut one; a
killed write leaves its temporary file, which :func:`remove_stale_temporaries` removes on the
next run. A path that is a symbolic link stays one: the link's target is written
(:func:`written_file`).
"""

from __future__ import annotations

import os

__all__ = ["alive", "atomic_write", "remove_stale_temporaries", "written_file"]


def atomic_write(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``, all at once: ``text`` goes to a temporary
    file ``<file>.tmp-<process id>`` in the same folder, is flushed to disk, then renamed over
    the file. A ``path`` that is a symbolic link stays one: its target is replaced. If anything
    fails before the rename, the file is as it was and the temporary file is removed."""
    target = written_file(path)
    parent = os.path.dirname(target)
    if parent:
        os.makedirs(parent, exist_ok=True)
    temporary = f"{target}{_TEMPORARY}{os.getpid()}"
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


_TEMPORARY = ".tmp-"  # atomic_write's temporary files: <file>.tmp-<process id>


def written_file(path: str) -> str:
    """The file that writing ``path`` changes: the target of a symbolic link (resolved through
    every link, even one whose target does not exist yet), else ``path`` itself."""
    return os.path.realpath(path) if os.path.islink(path) else path


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove the temporary files :func:`atomic_write` left for ``path`` in runs that were
    killed while writing: ``<file>.tmp-<process id>`` whose process no longer runs on this
    host. Other files, and those of a running process, are kept. Returns the removed paths."""
    target = written_file(path)
    folder, prefix = os.path.dirname(target) or ".", os.path.basename(target) + _TEMPORARY
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        pid = name[len(prefix) :]
        if not (name.startswith(prefix) and pid.isdigit()) or alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(folder, name))
        except OSError:  # gone already, or not ours to remove: leave it
            continue
        removed.append(os.path.join(folder, name))
    return removed


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (always ``True`` on Windows, where asking
    would end it)."""
    if os.name == "nt":  # os.kill would end the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs under another user
        return True
    return True
