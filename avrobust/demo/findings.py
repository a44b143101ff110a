"""The paper's findings checked on the demo's numbers: a list of small claim functions
(:data:`CLAIMS`), each with named thresholds (:mod:`.verdicts`), each returning a structured
:class:`~avrobust.demo.verdicts.Finding`.

The attack-side claims (:mod:`._attack_claims`) are about the undefended model (A); the
defence-side ones (:mod:`._model_claims`) compare the models; the extras (inference-aware and
transfer attacks) close the list.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._attack_claims import ATTACK_CLAIMS, EXTRA_CLAIMS
from ._model_claims import MODEL_CLAIMS
from .config import DemoConfig
from .intervals import Intervals, Report
from .verdicts import Claim, Evidence, Finding

__all__ = ["CLAIMS", "findings"]

#: every claim function, in the order of the summary.
CLAIMS: tuple[Claim, ...] = (*ATTACK_CLAIMS, *MODEL_CLAIMS, *EXTRA_CLAIMS)


def findings(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, Report],
    extras: Mapping[str, Report],
    *,
    intervals: Intervals | None = None,
) -> list[Finding]:
    """Check the Push-Pull findings (§4.2–4.4) against the demo's measurements.

    Every verdict compares mAP under attack at ``eps_av = table_eps`` (audio-visual attack unless
    the claim is about modalities) through paired 95 % bootstrap intervals over the attacked
    clips, and states the numbers, whatever they say. Differences between mAPs count only
    beyond ``config.tie_margin`` points. The intervals cover the choice of clips, not another
    training run.

    Args:
        config: the demo settings.
        clean_map: ``{model key: clean mAP in [0, 1]}``.
        reports: ``{model key: white-box grid report}``.
        extras: ``{"inference": ..., "transfer": ...}`` reports.
        intervals: the bootstrap behind the verdicts (default: a fresh one for ``config``).

    Returns:
        One :class:`~avrobust.demo.verdicts.Finding` per claim the run can test, in the
        summary's order.
    """
    evidence = Evidence(config, clean_map, reports, extras, intervals or Intervals(config))
    found = (claim(evidence) for claim in CLAIMS)
    return [f for f in found if f is not None]
