"""One grid cell's measures (:class:`CellResult`) and the JSON form every result is saved in."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_choice

__all__ = ["CellResult", "cell_key", "json_ready"]

_KINDS = ("ap", "accuracy")
_FLOATS: tuple[str, ...] = ("map_clean", "map_adv", "success_rate", "frame_error_rate")
_FLOATS += ("seconds", "accuracy_clean", "accuracy_adv")
# fields added after results-file format 2 was written, with their defaults (NaN: absent)
_ADDED: dict[str, Any] = {"measure": "ap", "classes": 2}
_ADDED.update(accuracy_clean=math.nan, accuracy_adv=math.nan, broken_by=None, psnr_peak={})


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
        rule: the attack rule's name (``"bim"``, ``"mim"``, ``"pgd"``, ..., ``"worst-case"``).
        eps: the budget parameter (``eps_av`` of Push-Pull with the default budgets).
        modalities: the attacked modalities, e.g. ``("audio", "visual")``.
        map_clean: frame mAP in [0, 1] of the target model on the clean selected clips (NaN for
            a multi-class task: AP needs one score per label).
        map_adv: frame mAP in [0, 1] on the adversarial clips (NaN for a multi-class task).
        success_rate: fraction of clips where the attack succeeded (more than half of the
            frames predicted wrongly: at a 0.5 threshold for a binary task, top-1 for a
            multi-class one; a clip label counts as one frame), in [0, 1].
        frame_error_rate: fraction of frames predicted wrongly under attack, in [0, 1].
        ecr: ``{modality: ECR}`` embedding change ratio (unitless, >= 0; lower = the embeddings
            moved less).
        snr_db: ``{attacked modality: mean SNR in dB}`` (signal-to-perturbation ratio; higher = less
            perceptible).
        psnr_db: ``{attacked modality: mean PSNR in dB}`` for modalities whose budget has finite
            bounds, with the peak of :attr:`psnr_peak`.
        linf: ``{attacked modality: largest absolute change}`` in the input's units.
        samples: clips attacked.
        frames: frames scored.
        seconds: wall time of the cell.
        per_clip: what a bootstrap over the clips needs (:mod:`avrobust.bootstrap`), per
            attacked clip in the order of the report's ``selection``: ``"labels"``,
            ``"clean"`` and ``"adv"`` (one list per clip of its frame labels, clean scores and
            adversarial scores; one element for clip labels; scores at float32 precision; for a
            multi-class task the top-1 classes instead of scores) and ``"ecr"`` (``{modality:
            [mean ECR of each clip]}``). ``None`` for cells read from a results file written
            before this field existed.
        measure: the cell's headline measure: ``"ap"`` (binary task, the mAP fields) or
            ``"accuracy"`` (the accuracy fields; always for a multi-class task). ``"ap"`` for
            cells read from a results file written before this field existed.
        classes: ``C``, the class count of the model's logits (2 for older cells).
        accuracy_clean: top-1 accuracy in [0, 1] on the clean selected clips (over frames for
            frame labels; at the 0.5 threshold for a binary task); NaN for cells read from a
            results file written before this field existed.
        accuracy_adv: the same accuracy on the adversarial clips (``1 - frame_error_rate``).
        broken_by: of a worst-case cell (:class:`~avrobust.evaluation.WorstCase`), the clips
            each attack of the ensemble broke, ``{"apgd-ce": n, "apgd-t-margin": n, "square":
            n}`` in the order run, summed over the batches (see
            :class:`avrobust.attacks.ensemble.EnsembleResult`: as the attacker judged them,
            which is the target unless a surrogate crafted the attack); ``None`` for a step
            rule's cell and for cells read from a results file written before this field.
        psnr_peak: ``{modality: the peak R}`` each PSNR used, in the input's units: the width
            of the budget's bounds (255 for 0–255 pixels), or the data's own span when the data
            is in other units than the bounds (:func:`~avrobust.evaluation.runner.psnr_peaks`);
            empty for cells read from a results file written before this field (their peak
            was the bounds' width).
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
    measure: str = "ap"
    classes: int = 2
    accuracy_clean: float = math.nan
    accuracy_adv: float = math.nan
    broken_by: dict[str, int] | None = None
    psnr_peak: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``"rule|eps|modality+modality"``, the cell's identity in the results file."""
        return cell_key(self.rule, self.eps, self.modalities)

    @property
    def attacked(self) -> str:
        """The attacked modalities joined with ``+``, e.g. ``"audio+visual"``."""
        return "+".join(self.modalities)

    def values(self, measure: str | None = None) -> tuple[float, float]:
        """``(clean, adversarial)`` of ``measure`` in [0, 1]: ``"ap"`` the mAP fields,
        ``"accuracy"`` the accuracy fields; ``None``: the cell's own :attr:`measure`.

        Raises:
            ValueError: ``measure`` is not one of them, or the cell lacks it (the mAP of a
                multi-class task; accuracy not recorded in an older results file).
        """
        chosen = self.measure if measure is None else check_choice(measure, "measure", _KINDS)
        if chosen == "ap":
            if self.measure != "ap" and math.isnan(self.map_adv):
                raise ValueError(
                    f"measure: cell {self.key} is of a {self.classes}-class task, which has no "
                    "AP; use measure='accuracy'"
                )
            return self.map_clean, self.map_adv
        if math.isnan(self.accuracy_adv):
            raise ValueError(
                f"measure: cell {self.key} has no accuracy (read from a results file written "
                "before evaluate recorded it); use measure='ap'"
            )
        return self.accuracy_clean, self.accuracy_adv

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``). The fields added for
        multi-class tasks (``measure``, ``classes``, ``accuracy_*``) and worst-case cells
        (``broken_by``) are left out while they hold their defaults, so a cell read from an
        older results file gives its line back."""
        values = dataclasses.asdict(self)
        for name, default in _ADDED.items():
            value = values[name]
            if value == default or (isinstance(value, float) and math.isnan(value)):
                del values[name]
        return json_ready(values)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellResult:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: ``data`` lacks a field without a default, or has one CellResult lacks.
        """
        values = dict(data)
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.default is f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        unknown = sorted(set(values) - {f.name for f in fields})
        if missing or unknown:
            raise ValueError(
                f"data: expected a dict of CellResult.to_dict(), got one without {missing} "
                f"and with unknown fields {unknown}"
            )
        values["modalities"] = tuple(values["modalities"])
        for name in ("snr_db", "psnr_db"):
            values[name] = {k: math.inf if v is None else v for k, v in values[name].items()}
        for name in _FLOATS:
            if name in values and values[name] is None:
                values[name] = math.nan
        return cls(**values)
