"""Official TalkNet checkpoints: key mapping, strict loading and saving in the official layout.

The official ``talkNet.saveParameters`` writes ``torch.save(state_dict)`` of a module with the
children ``model`` (the network), ``lossAV``, ``lossA`` and ``lossV`` (one ``FC`` head each): a flat
dict of 487 tensors. avrobust's :class:`~avrobust.models.TalkNet` keeps the network's own module
names and calls the heads ``head_av``, ``head_a``, ``head_v``, so the mapping is a prefix rename:

==========================  ==================
official                    avrobust
==========================  ==================
``model.<name>``            ``<name>``
``lossAV.FC.<weight|bias>`` ``head_av.<...>``
``lossA.FC.<weight|bias>``  ``head_a.<...>``
``lossV.FC.<weight|bias>``  ``head_v.<...>``
==========================  ==================

``module.`` path segments (left by ``nn.DataParallel``) are dropped on the way in.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..._checks import check_bool, describe

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "CheckpointMismatchError",
    "LoadReport",
    "avrobust_to_official",
    "load_official_state_dict",
    "official_to_avrobust",
    "read_state_dict",
    "save_official_checkpoint",
]

# (official prefix, avrobust prefix), most specific first.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("lossAV.FC.", "head_av."),
    ("lossA.FC.", "head_a."),
    ("lossV.FC.", "head_v."),
    ("model.", ""),
)
_SHOWN = 10  # keys listed per category in an error message


def _strip_module(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "module")


def official_to_avrobust(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Rename official TalkNet checkpoint keys to avrobust's :class:`TalkNet` keys (pure).

    Drops ``module.`` path segments, then renames ``model.X -> X`` and
    ``lossAV.FC. / lossA.FC. / lossV.FC. -> head_av. / head_a. / head_v.``. A key with none of
    these prefixes is kept unchanged (a strict load then reports it as unexpected). Order and
    values are kept; nothing is copied.

    Args:
        state_dict: official flat state dict (key -> tensor).

    Returns:
        A new dict with renamed keys.

    Raises:
        ValueError: two keys map to the same name (e.g. ``x`` and ``module.x``).

    Example:
        >>> official_to_avrobust({"module.model.selfAV.norm1.bias": 0, "lossAV.FC.bias": 1})
        {'selfAV.norm1.bias': 0, 'head_av.bias': 1}
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        name = _strip_module(key)
        for official, ours in _PREFIXES:
            if name.startswith(official):
                name = ours + name[len(official) :]
                break
        if name in out:
            raise ValueError(f"state_dict: keys collide after mapping: {key!r} -> {name!r}")
        out[name] = value
    return out


def avrobust_to_official(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Rename avrobust :class:`TalkNet` keys to the official checkpoint layout (pure).

    The inverse of :func:`official_to_avrobust`: ``head_av. / head_a. / head_v.`` become
    ``lossAV.FC. / lossA.FC. / lossV.FC.`` and every other key gets the ``model.`` prefix.

    Args:
        state_dict: ``TalkNet.state_dict()``.

    Returns:
        A new dict in the official layout, same order and values.

    Example:
        >>> avrobust_to_official({"selfAV.norm1.bias": 0, "head_av.bias": 1})
        {'model.selfAV.norm1.bias': 0, 'lossAV.FC.bias': 1}
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        for official, ours in _PREFIXES:
            if key.startswith(ours):
                out[official + key[len(ours) :]] = value
                break
    return out


@dataclass(frozen=True)
class LoadReport:
    """What a checkpoint load found, with key names in the official layout.

    Attributes:
        missing: model keys absent from the checkpoint (``num_batches_tracked`` not counted).
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint shape, model shape)`` for keys whose shapes differ.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every key matched."""
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """A readable summary (at most 10 keys per category)."""

        parts = []
        if self.missing:
            parts.append(f"missing keys ({len(self.missing)}): {_shown(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected keys ({len(self.unexpected)}): {_shown(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k} (checkpoint {list(a)}, model {list(b)})" for k, a, b in self.mismatched]
            parts.append(f"shape mismatches ({len(shapes)}): {_shown(shapes)}")
        return "; ".join(parts) if parts else "all keys match"


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; ``report`` holds the full key lists."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


def _official_name(key: str) -> str:
    return next(iter(avrobust_to_official({key: None})), key)


def load_official_state_dict(
    model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True
) -> LoadReport:
    """Load an official-layout TalkNet state dict into ``model`` (in place).

    Keys go through :func:`official_to_avrobust`. Missing ``*.num_batches_tracked`` entries are
    tolerated (the model keeps its own). Everything else must match exactly when ``strict``.
    Weights holding NaN or Inf are refused (nothing is loaded): they would give NaN scores.

    Args:
        model: a :class:`TalkNet` whose configuration fits the checkpoint.
        state_dict: official flat dict (``model.`` / ``lossAV.`` / ``lossA.`` / ``lossV.``).
        strict: raise on any missing, unexpected or wrongly shaped key. With ``strict=False`` the
            matching keys are loaded, the rest is skipped and reported with a warning.

    Returns:
        The :class:`LoadReport` (empty on a perfect match).

    Raises:
        CheckpointMismatchError: (a ``ValueError``) when ``strict`` and the keys do not match;
            the message lists missing, unexpected and mismatched keys, ``.report`` has them all.
        ValueError: a floating-point tensor holds NaN or Inf, integer, bool or complex values
            stand where the model has float weights, or a BatchNorm ``running_var`` is negative
            (the message names the keys; nothing is loaded).
        TypeError: ``state_dict`` is not a mapping of string keys to tensors, or ``strict`` is
            not a bool.
    """
    return _load_state(model, state_dict, strict=strict, source="state_dict")


def _load_state(
    model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool, source: str
) -> LoadReport:
    """:func:`load_official_state_dict`, with ``source`` naming the dict (or file) in errors."""
    check_bool(strict, "strict")
    _check_state_dict(state_dict, source)
    _check_finite_weights(state_dict, source)
    mapped = official_to_avrobust(state_dict)
    own = model.state_dict()
    missing = [
        _official_name(k) for k in own if k not in mapped and not k.endswith("num_batches_tracked")
    ]
    unexpected = [k for k, mk in zip(state_dict, mapped) if mk not in own]
    mismatched = [
        (_official_name(k), tuple(v.shape), tuple(own[k].shape))
        for k, v in mapped.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    _check_kinds(mapped, own, source)
    report = LoadReport(missing, unexpected, mismatched)
    if not report.ok:
        which = "checkpoint" if source == "state_dict" else source
        message = f"{which} does not fit {type(model).__name__}: {report.describe()}"
        if strict:
            raise CheckpointMismatchError(message, report)
        warnings.warn(message + "; those keys were skipped", stacklevel=3)
    bad = {name for name, _, _ in mismatched}
    loadable = {k: v for k, v in mapped.items() if k in own and _official_name(k) not in bad}
    with torch.no_grad():
        model.load_state_dict(loadable, strict=False)
    return report


def _check_finite_weights(state_dict: Mapping[str, Tensor], name: str) -> None:
    """Raise ``ValueError`` naming the first keys whose floating-point values are NaN or Inf."""
    bad: list[str] = []
    for key, value in state_dict.items():
        if value.is_floating_point() or value.is_complex():
            if bool(torch.isfinite(value.sum())):  # fast path; an overflowing sum is recounted
                continue
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad.append(f"{key} ({count} of {value.numel()} values)")
    if bad:
        raise ValueError(
            f"{name}: {len(bad)} weight tensor(s) hold NaN or Inf values: {_shown(bad)}; refusing to "
            "load them (they would make every score NaN; was the training run diverged or the "
            "file damaged?)"
        )


def _shown(items: list[Any]) -> str:
    """The first ``_SHOWN`` items, and how many more there are."""
    more = f" ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(map(str, items[:_SHOWN])) + more


def _check_kinds(mapped: Mapping[str, Tensor], own: Mapping[str, Tensor], name: str) -> None:
    """Raise ``ValueError`` naming the keys whose values cannot be the model's: integer, bool or
    complex values for float weights (a cast would truncate them, make them 0/1 or drop the
    imaginary part), or a negative BatchNorm ``running_var`` (NaN scores)."""
    bad: list[str] = []
    for key, value in mapped.items():
        target = own.get(key)
        if target is None:
            continue
        if target.is_floating_point() and not value.is_floating_point():
            bad.append(
                f"{_official_name(key)} ({value.dtype} values, the model's are {target.dtype})"
            )
        elif key.endswith("running_var") and value.is_floating_point() and bool((value < 0).any()):
            bad.append(f"{_official_name(key)} (a negative running_var: a variance is >= 0)")
    if bad:
        raise ValueError(
            f"{name}: {len(bad)} tensor(s) cannot be the model's weights: {_shown(bad)}; refusing to "
            "load them (was the file written by another program, or edited?)"
        )


def _check_path(path: Any, name: str = "path") -> str:
    """Check a file path argument: ``str`` or ``os.PathLike`` of ``str``, without a NUL byte.

    Returns:
        The path as a ``str``.

    Raises:
        TypeError: not a path (``None``, an int, bytes, ...).
        ValueError: the path contains a NUL byte.
    """
    value = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a file path (str or os.PathLike), got {describe(path)}")
    if "\0" in value:
        raise ValueError(f"{name}: a file path cannot contain a NUL byte, got {value!r}")
    return value


def _check_state_dict(value: Any, name: str) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name}: expected a state dict (a flat dict of parameter names to tensors, as the "
            f"official talkNet.saveParameters writes), got {describe(value)}"
        )
    bad = [str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        shown = ", ".join(bad[:_SHOWN]) + (" ..." if len(bad) > _SHOWN else "")
        raise TypeError(
            f"{name}: expected a flat dict of parameter names to tensors (the official "
            f"layout), but {len(bad)} entries are not tensors: {shown}. A training checkpoint "
            "that wraps the weights (e.g. under 'state_dict') must be unwrapped first."
        )


def read_state_dict(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Tensor]:
    """Read a checkpoint file that holds a flat state dict (``torch.load``, ``weights_only=True``).

    Args:
        path: the file (e.g. ``pretrain_AVA.model``).
        map_location: where tensors go (default CPU, so GPU-saved files load anywhere).

    Returns:
        The state dict as saved (official layout for official files).

    The values are not checked here (a file can be read to inspect it); the loaders
    (:func:`load_official_state_dict`, :meth:`TalkNet.from_checkpoint`) refuse NaN or Inf weights.

    Raises:
        TypeError: ``path`` is not a str or ``os.PathLike``.
        ValueError: ``path`` contains a NUL byte; the file is not a PyTorch checkpoint, or does
            not hold a flat state dict.
        FileNotFoundError: no such file, or ``path`` is a directory (the message says which).
    """
    path = _check_path(path)
    if os.path.isdir(path):  # FileNotFoundError, as for a missing file (callers catch that one)
        raise FileNotFoundError(
            f"path: {path!r} is a directory; expected a checkpoint file (e.g. pretrain_AVA.model)"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no checkpoint file at {path!r}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a corrupt or foreign file fails in many ways inside the unpickler
        reason = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"path: {os.fspath(path)!r} is not a PyTorch checkpoint holding a state dict "
            f"(torch.load(weights_only=True) failed: {type(err).__name__}: {reason})"
        ) from err
    try:
        _check_state_dict(obj, f"checkpoint {os.fspath(path)!r}")
    except TypeError as err:
        raise ValueError(str(err)) from None
    return dict(obj)


def save_official_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Save ``model``'s weights in the official layout (a flat dict, as ``talkNet.saveParameters``).

    The file loads with the official ``talkNet.loadParameters`` and with
    :meth:`TalkNet.from_checkpoint`.

    Args:
        model: a :class:`TalkNet`.
        path: destination file (overwritten if it exists).

    Raises:
        TypeError: ``path`` is not a str or ``os.PathLike``.
        ValueError: ``path`` contains a NUL byte.
        IsADirectoryError: ``path`` is a directory.
        FileNotFoundError: its parent directory does not exist.
    """
    path = _check_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path!r} is a directory; expected a file name to write")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"path: the directory {parent!r} of {path!r} does not exist")
    state = {k: v.detach().clone() for k, v in avrobust_to_official(model.state_dict()).items()}
    torch.save(state, path)
