"""One grid cell's measures (:class:`CellResult`) and the JSON form every result is saved in."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CellResult", "cell_key", "json_ready"]


def cell_key(rule: str, eps: float, modalities: Sequence[str]) -> str:
    """``"rule|eps|modality+modality"``, a cell's identity (in a report and a results file)."""
    return f"{rule}|{eps!r}|{'+'.join(modalities)}"


def json_ready(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and tuples as lists (JSON has no inf/NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


@dataclass(frozen=True)
class CellResult:
    """The measures of one grid cell (one rule, one budget, one set of attacked modalities).

    Attributes:
        rule: the attack rule's name (``"bim"``, ``"mim"``, ``"pgd"``, ...).
        eps: the budget parameter (``eps_av`` of Push-Pull with the default budgets).
        modalities: the attacked modalities, e.g. ``("audio", "visual")``.
        map_clean: frame mAP in [0, 1] of the target model on the clean selected clips.
        map_adv: frame mAP in [0, 1] on the adversarial clips.
        success_rate: fraction of clips where the attack succeeded (more than half of the
            frames predicted wrongly at a 0.5 threshold), in [0, 1].
        frame_error_rate: fraction of frames predicted wrongly under attack, in [0, 1].
        ecr: ``{modality: ECR}`` embedding change ratio (unitless, >= 0; lower = the embeddings
            moved less).
        snr_db: ``{attacked modality: mean SNR in dB}`` (signal-to-perturbation ratio; higher = less
            perceptible).
        psnr_db: ``{attacked modality: mean PSNR in dB}`` for modalities whose budget has finite
            bounds (peak = the width of the bounds, 255 for pixels).
        linf: ``{attacked modality: largest absolute change}`` in the input's units.
        samples: clips attacked.
        frames: frames scored.
        seconds: wall time of the cell.
        per_clip: what a bootstrap over the clips needs (:mod:`avrobust.bootstrap`), per
            attacked clip in the order of the report's ``selection``: ``"labels"``,
            ``"clean"`` and ``"adv"`` (one list per clip of its frame labels, clean scores and
            adversarial scores; one element for clip labels; scores at float32 precision) and
            ``"ecr"`` (``{modality: [mean ECR of each clip]}``). ``None`` for cells read from a
            results file written before this field existed.
    """

    rule: str
    eps: float
    modalities: tuple[str, ...]
    map_clean: float
    map_adv: float
    success_rate: float
    frame_error_rate: float
    ecr: dict[str, float] = field(default_factory=dict)
    snr_db: dict[str, float] = field(default_factory=dict)
    psnr_db: dict[str, float] = field(default_factory=dict)
    linf: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    frames: int = 0
    seconds: float = 0.0
    per_clip: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """``"rule|eps|modality+modality"``, the cell's identity in the results file."""
        return cell_key(self.rule, self.eps, self.modalities)

    @property
    def attacked(self) -> str:
        """The attacked modalities joined with ``+``, e.g. ``"audio+visual"``."""
        return "+".join(self.modalities)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``)."""
        return json_ready(dataclasses.asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellResult:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["modalities"] = tuple(values["modalities"])
        for name in ("snr_db", "psnr_db"):
            values[name] = {k: math.inf if v is None else v for k, v in values[name].items()}
        return cls(**values)
