"""The cache of the demo's gradient-masking checks: one JSON file of diagnoses, each stored
with the fingerprint of what it depends on (the model's and the surrogate's weights, the clips'
content, the budget, the settings and the version of diagnose's checks), so that a rerun reuses a
diagnosis only for the same inputs and checks and recomputes the others."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..diagnostics import Diagnosis, Flag
from ..evaluation.fingerprints import clip_digests, data_digest, model_fingerprint

__all__ = ["fingerprint", "load", "save"]

_FORMAT = 1
#: The version of :func:`avrobust.diagnose`'s checks, part of every key: a diagnosis cached by
#: an older set of checks is recomputed (once). 2: with the ``batch_coupling`` flag. Raise it
#: whenever diagnose gains, drops or changes a check.
CHECKS = 2


def fingerprint(
    model: nn.Module,
    surrogate: nn.Module | None,
    batch: Mapping[str, Tensor],
    labels: Tensor,
    eps_av: float,
    options: Mapping[str, Any],
) -> str:
    """SHA-256 (hex) of everything a diagnosis depends on, :data:`CHECKS` included."""
    parts = {
        "checks": CHECKS,
        "model": model_fingerprint(model),
        "surrogate": model_fingerprint(surrogate),
        "clips": data_digest(clip_digests(batch, labels)),
        "eps_av": float(eps_av),
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load(path: str | None) -> dict[str, dict[str, Any]]:
    """``{model key: {"fingerprint", "diagnosis", "seconds"}}`` from ``path``; empty when there
    is no such file, or it is unreadable or of another format (then it is recomputed)."""
    if path is None or not os.path.isfile(path):
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return {}
    entries = data.get("models")
    return entries if isinstance(entries, dict) else {}


def save(path: str, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``entries`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        json.dump({"format": _FORMAT, "models": dict(entries)}, handle, indent=1)
    os.replace(path + ".tmp", path)


def to_json(diagnosis: Diagnosis) -> dict[str, Any]:
    """A :class:`~avrobust.diagnostics.Diagnosis` as JSON-ready data."""
    return {
        "flags": [list(f) for f in diagnosis.flags],
        "accuracy": dict(diagnosis.accuracy),
        "zero_gradient": dict(diagnosis.zero_gradient),
        "samples": diagnosis.samples,
    }


def from_json(data: Mapping[str, Any]) -> Diagnosis:
    """The :class:`~avrobust.diagnostics.Diagnosis` that :func:`to_json` stored."""
    return Diagnosis(
        flags=[Flag(str(n), bool(fired), str(s)) for n, fired, s in data["flags"]],
        accuracy={k: float(v) for k, v in data["accuracy"].items()},
        zero_gradient={k: float(v) for k, v in data["zero_gradient"].items()},
        samples=int(data["samples"]),
    )
