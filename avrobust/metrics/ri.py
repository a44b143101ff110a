"""Relative improvement (RI) and the ✓AV / ✗A / ✗V / ✗AV / Avg tables of Tian & Xu (CVPR 2021).

A model is scored by four accuracies (in percent, like the slides, or fractions, consistently):
clean (✓AV), under an audio-only attack (✗A), a visual-only attack (✗V) and a joint attack (✗AV).

* defense table: ``Avg = (✗A + ✗V + ✗AV) / 3`` and
  ``RI_m = (✓AV_m + Avg_m) − (✓AV_n + Avg_n)`` against the undefended model ``n`` (slides);
* fusion table: there the slides' "Avg." column is the mean of all **four** columns
  (e.g. Sum: (88.46 + 35.58 + 45.19 + 3.85) / 4 = 43.27); ``avg="all"`` reproduces it.

:meth:`avrobust.evaluation.EvaluationReport.robustness_row` builds a row from an ``evaluate``
report: top-1 accuracy % for a multi-class model (Tian & Xu's measure, e.g. an event
classifier), frame mAP % for a binary one (active-speaker detection).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from .._checks import check_choice, check_int, check_number

__all__ = ["RobustnessRow", "relative_improvement", "robustness_table"]

_KEYS = ("clean", "audio", "visual", "audiovisual")


@dataclass(frozen=True)
class RobustnessRow:
    """The four accuracies of one model.

    Attributes:
        clean: ✓AV, accuracy on clean inputs.
        audio: ✗A, accuracy when only the audio is attacked.
        visual: ✗V, accuracy when only the visual input is attacked.
        audiovisual: ✗AV, accuracy under the joint attack.

    Example:
        >>> minsim = RobustnessRow(91.35, 70.19, 46.15, 36.54)
        >>> none = RobustnessRow(88.46, 51.92, 45.19, 15.38)
        >>> round(minsim.ri(none), 2)
        16.35
    """

    clean: float
    audio: float
    visual: float
    audiovisual: float

    def __post_init__(self) -> None:
        for key in _KEYS:
            check_number(getattr(self, key), f"RobustnessRow.{key}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> RobustnessRow:
        """Build from ``{"clean", "audio", "visual", "audiovisual"}`` (e.g. an evaluation report).

        Raises:
            KeyError: a key is missing (the message lists the four keys).
        """
        missing = [k for k in _KEYS if k not in values]
        if missing:
            raise KeyError(f"values: missing {missing}; expected keys {list(_KEYS)}")
        return cls(*(check_number(values[k], f"values[{k!r}]") for k in _KEYS))

    @property
    def attacked_mean(self) -> float:
        """``(✗A + ✗V + ✗AV) / 3``, the defense table's Avg."""
        return (self.audio + self.visual + self.audiovisual) / 3

    @property
    def overall_mean(self) -> float:
        """``(✓AV + ✗A + ✗V + ✗AV) / 4``, the fusion table's Avg."""
        return (self.clean + self.audio + self.visual + self.audiovisual) / 4

    def ri(self, baseline: RobustnessRow) -> float:
        """Relative improvement over ``baseline``; see :func:`relative_improvement`."""
        return relative_improvement(self, baseline)

    def as_dict(self) -> dict[str, float]:
        """The four accuracies plus ``attacked_mean`` and ``overall_mean``."""
        return {
            **asdict(self),
            "attacked_mean": self.attacked_mean,
            "overall_mean": self.overall_mean,
        }


def relative_improvement(model: RobustnessRow, baseline: RobustnessRow) -> float:
    """``RI = (✓AV_m + Avg_m) − (✓AV_n + Avg_n)`` with ``Avg = (✗A + ✗V + ✗AV) / 3`` (slides).

    Args:
        model: the defended model's row ``m``.
        baseline: the undefended model's row ``n`` (Tian & Xu: the Concat model without defense).

    Returns:
        RI in the accuracies' unit (percentage points for percentages); 0 for the baseline itself.
    """
    return (model.clean + model.attacked_mean) - (baseline.clean + baseline.attacked_mean)


def robustness_table(
    rows: Mapping[str, RobustnessRow],
    baseline: str | None = None,
    *,
    avg: str = "attacked",
    digits: int = 2,
) -> str:
    """A Markdown table ``method | ✓AV | ✗A | ✗V | ✗AV | Avg [| RI]`` as on the slides.

    Args:
        rows: ``{method name: row}`` in display order.
        baseline: name of the row RI is measured against; no RI column when ``None``.
        avg: ``"attacked"`` (defense table, mean of the three attacked columns) or ``"all"``
            (fusion table, mean of all four).
        digits: decimals shown.

    Returns:
        The table as a string (header, separator, one line per row).

    Raises:
        KeyError: ``baseline`` is not one of ``rows``.
    """
    avg = check_choice(avg, "avg", ("attacked", "all"))
    digits = check_int(digits, "digits", min_value=0)
    if baseline is not None and baseline not in rows:
        raise KeyError(f"baseline: {baseline!r} is not one of the rows {list(rows)}")
    header = ["method", "✓AV", "✗A", "✗V", "✗AV", "Avg"] + (["RI"] if baseline is not None else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        mean = row.attacked_mean if avg == "attacked" else row.overall_mean
        cells = [row.clean, row.audio, row.visual, row.audiovisual, mean]
        if baseline is not None:
            cells.append(row.ri(rows[baseline]))
        text = [f"{v:.{digits}f}" if math.isfinite(v) else "–" for v in cells]
        lines.append("| " + " | ".join([name, *text]) + " |")
    return "\n".join(lines)
