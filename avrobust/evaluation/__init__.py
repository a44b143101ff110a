"""The robustness grid: attacks × budgets × attacked modalities, with a resumable results file.

:func:`evaluate` runs every cell of a :class:`Grid` (``rules × eps × modality sets``) against a
model over a data source and reports, per cell, frame mAP (clean and adversarial, as the AVA
evaluation computes it) for a binary task, or top-1 accuracy for a multi-class task (logits of
``C > 2`` classes, :mod:`~avrobust.evaluation.tasks`), the embedding change ratio (ECR) per modality, the attack success rate
and how perceptible the perturbation is (SNR, PSNR, L∞ size), as in Push-Pull §4.

As in the paper, the attacked set can be restricted to correctly predicted clips, balanced between
speaking and not speaking (§4.1: 225 + 225; :class:`Selection`); the perturbation can be crafted
on a separate surrogate model (black-box transfer, Fig. 3a); and the attack can maximise the
training loss or the inference loss (Fig. 4; ``Grid.objective``). Next to the step rules a
grid can hold the worst case per clip over :func:`~avrobust.default_ensemble` (APGD, targeted
APGD, Square; :class:`WorstCase`, ``"worst-case"``).

Every finished cell is appended to a JSON-lines results file at once (:class:`Store`); a run
interrupted at any point resumes from that file without recomputing (or losing) a finished cell,
and gives the same numbers as an uninterrupted run (each cell's random start is seeded by the
cell itself, not by the order of the run). Another grid over the same file reuses the cells they
share. The file is never rewritten in place (a temporary file and a rename), is locked while a
run uses it, and is refused when it belongs to another model, other data, other settings or
code, or when a line of it was edited.

The package's modules, one job each: :mod:`~avrobust.evaluation.grid` (the grid),
:mod:`~avrobust.evaluation.sources` (data sources), :mod:`~avrobust.evaluation.scoring` (scores and
embeddings), :mod:`~avrobust.evaluation.tasks` (binary or multi-class: the measure, per-class
balancing), :mod:`~avrobust.evaluation.selection` (which clips), :mod:`~avrobust.evaluation.store`
(the results file; its lines in :mod:`~avrobust.evaluation.records`, fingerprints in
:mod:`~avrobust.evaluation.fingerprints`), :mod:`~avrobust.evaluation.recipes` (grid entries
that build a whole attack: :class:`WorstCase`, the worst case over an ensemble),
:mod:`~avrobust.evaluation.runner` (cells over the streaming metrics),
:mod:`~avrobust.evaluation.results` (:class:`CellResult`),
:mod:`~avrobust.evaluation.report` (:class:`EvaluationReport`) and
:mod:`~avrobust.evaluation.reporting` (tables and plots, shared with the demo).
"""

from .api import evaluate
from .grid import Grid
from .recipes import WorstCase
from .report import EvaluationReport
from .reporting import write_csv_rows
from .results import CellResult
from .scoring import SPEAKING_CLASSES, Measures
from .selection import Selection, balanced_subset, correct_samples
from .store import Store
from .tasks import balanced_per_class

__all__ = [
    "SPEAKING_CLASSES",
    "CellResult",
    "EvaluationReport",
    "Grid",
    "Measures",
    "Selection",
    "Store",
    "WorstCase",
    "balanced_per_class",
    "balanced_subset",
    "correct_samples",
    "evaluate",
    "write_csv_rows",
]
