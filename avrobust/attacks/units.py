"""Whether data is in the units its budget's bounds assume.

A budget's ``bounds`` say the valid range of its modality (0–255 for pixels, [-1, 1] for a
waveform), and its ``eps`` is in the same units. Data in other units (frames in [0, 1] under
0–255 bounds, an int16-scale waveform under [-1, 1]) makes every number wrong without an error:
an eps of 2 pixel levels becomes twice the whole range of a [0, 1] frame, and a PSNR with a peak
of 255 reports a destroyed frame at 55 dB. :func:`units_disagree` is the one rule the attack's
warning and the evaluation's PSNR peak use; :func:`units_message` the one message.
"""

from __future__ import annotations

import math

__all__ = ["MESSAGE_PATTERN", "NARROW", "units_disagree", "units_message"]

MESSAGE_PATTERN = r"[^\n]*: the data's values lie in \["
"""A ``warnings`` filter pattern that matches :func:`units_message` (to silence a repeat of it,
e.g. the attack's per-call warning inside an evaluation that warned once for the whole data)."""

NARROW = 20.0
"""The factor by which data and bounds must differ in scale to be taken as other units. Data
smaller than its bounds is judged only when it fits in [-1, 1] (the small units people use are
unit-scale: frames in [0, 1], a float waveform), so quiet audio, silence and dark or low-contrast
frames in their bounds' units never count; data larger than its bounds always can (0–255 frames
or an int16-scale waveform under [-1, 1])."""

_UNIT = 1.0 + 1.0 / NARROW  # "fits in [-1, 1]", with a little overshoot (resampling, clipping)


def units_disagree(low: float, high: float, bounds: tuple[float, float]) -> bool:
    """Whether data with values in ``[low, high]`` is in other units than ``bounds``.

    With ``peak = max(|low|, |high|)`` and ``reach = max(|bounds[0]|, |bounds[1]|)``: True when
    ``peak >= NARROW * reach`` (data in larger units: 0–255 frames under (0, 1)), or when the
    data fits in [-1, 1] while ``reach >= NARROW`` (data in unit scale under bounds at least
    ``NARROW`` times larger: frames in [0, 1] under 0–255, a float waveform under int16 bounds;
    quiet audio under [-1, 1] never counts). All-zero data
    (silence, black frames) says nothing about its units: False. Bounds that are not finite:
    False.

    Args:
        low: the data's smallest value, in its units.
        high: its largest value.
        bounds: the budget's ``(low, high)`` bounds.

    Example:
        >>> units_disagree(0.0, 1.0, (0.0, 255.0)), units_disagree(3.0, 250.0, (0.0, 255.0))
        (True, False)
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    peak, reach = max(abs(low), abs(high)), max(abs(lo), abs(hi))
    if not peak > 0:
        return False
    return peak >= NARROW * reach or (peak <= _UNIT and reach >= NARROW * max(peak, 1.0))


def units_message(name: str, low: float, high: float, bounds: tuple[float, float]) -> str:
    """The warning for :func:`units_disagree`: the modality, what was seen, the bounds, the fix."""
    return (
        f"{name}: the data's values lie in [{low:.4g}, {high:.4g}], but its budget's bounds are "
        f"({bounds[0]:g}, {bounds[1]:g}) and its eps is in those units: the data looks like it "
        "is in other units (frames in [0, 1] under the default 0–255 budgets? audio beyond "
        "[-1, 1]?). Scale the data to the bounds' units (frames * 255, a waveform in [-1, 1]), "
        "or give the budget bounds and eps in the data's units (e.g. Linf(eps=2/255, "
        "bounds=(0.0, 1.0)))"
    )
