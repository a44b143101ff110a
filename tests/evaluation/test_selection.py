"""Which clips an evaluation attacks (avrobust.evaluation.selection), on hand-made clean passes.

``choose`` works from the record of the clean pass alone, so each test builds that record by
hand (which clips are correct, which are speaking) and checks the chosen indices against the
rule written out; ``clean_pass`` and ``select`` are checked with a stub model whose scores are
given, no attack.
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming
from torch import nn

import avrobust
from avrobust.evaluation import Measures, Selection
from avrobust.evaluation.selection import CleanPass, choose, clean_pass, select
from avrobust.evaluation.sources import Source


def record(correct: list[bool], positive: list[bool]) -> CleanPass:
    """A clean pass of ``len(correct)`` clips of one frame each (scores and labels unused)."""
    n = len(correct)
    ones = [torch.ones(1)] * n
    return CleanPass(list(range(n)), correct, positive, ones, ones, [b""] * n)


# clips 0-9: even ones speak; clips 1, 4, 7 are predicted wrongly
FOUND = record([i not in (1, 4, 7) for i in range(10)], [i % 2 == 0 for i in range(10)])


def test_correct_clips_without_balance_are_the_correct_ones_in_order():
    """clips='correct' without balancing: every correct clip, in index order."""
    assert choose(FOUND, Selection("correct", balance=False), seed=0) == [0, 2, 3, 5, 6, 8, 9]


def test_all_clips_and_per_class_without_balance():
    """clips='all': every clip; per_class without balancing keeps the first 2 * per_class."""
    assert choose(FOUND, Selection("all", balance=False), seed=0) == list(range(10))
    assert choose(FOUND, Selection("all", balance=False, per_class=2), seed=0) == [0, 1, 2, 3]


def test_balance_draws_as_many_speaking_as_silent_correct_clips():
    """Balanced: the correct speaking clips are 0, 2, 6, 8 and the silent ones 3, 5, 9; the
    draw takes 3 of each (the smaller class), all the silent ones, and is the same for the same
    seed."""
    chosen = choose(FOUND, Selection("correct"), seed=0)
    speaking = [i for i in chosen if i % 2 == 0]
    assert len(chosen) == 6 and set(speaking) <= {0, 2, 6, 8} and len(speaking) == 3
    assert [i for i in chosen if i % 2] == [3, 5, 9] and chosen == sorted(chosen)
    assert chosen == choose(FOUND, Selection("correct"), seed=0)


def test_per_class_with_balance():
    """per_class=2 with balancing: two clips of each class, drawn from the correct ones."""
    chosen = choose(FOUND, Selection("correct", per_class=2), seed=5)
    assert sum(i % 2 == 0 for i in chosen) == 2 and sum(i % 2 for i in chosen) == 2
    assert set(chosen) <= {0, 2, 3, 5, 6, 8, 9}
    assert_raises_naming(ValueError, "per_class", choose, FOUND, Selection(per_class=4), 0)


def test_explicit_indices_ignore_correctness_and_are_checked():
    """Explicit indices are taken as given (even wrongly predicted clips), deduplicated and
    sorted, balanced when asked; indices outside the data are refused naming them."""
    assert choose(FOUND, Selection([7, 1, 1, 4], balance=False), seed=0) == [1, 4, 7]
    balanced = choose(FOUND, Selection([7, 1, 4]), seed=0)  # 4 speaks, 1 and 7 do not
    assert len(balanced) == 2 and 4 in balanced and set(balanced) - {4} <= {1, 7}
    message = assert_raises_naming(
        ValueError, "Selection.clips", choose, FOUND, Selection([0, 12]), 0
    )
    assert "[12]" in message


def test_nothing_to_attack_is_refused():
    """No correct clip (without balancing) leaves nothing to attack: refused naming the field;
    with balancing, a class without candidates is refused saying so."""
    none = record([False] * 4, [True, False, True, False])
    assert_raises_naming(ValueError, "Selection.clips", choose, none, Selection(balance=False), 0)
    with pytest.raises(ValueError, match=r"cannot balance .*0 speaking and 0 not-speaking"):
        choose(none, Selection(), 0)


class Given(nn.Module):
    """A stub model whose P(speaking) per frame is the input ``p`` itself."""

    def forward(self, p: torch.Tensor) -> avrobust.AVOutput:
        logit = torch.log(p) - torch.log1p(-p)
        return avrobust.AVOutput(torch.stack([-logit, logit], dim=-1))


def test_clean_pass_and_select_on_given_scores():
    """clean_pass marks a clip correct when at least min_accuracy of its frames are right
    (score >= 0.5 means speaking) and speaking when most frames are; select reports the clean
    measures of the chosen clips (mAP 1.0 on clips predicted right)."""
    p = torch.tensor([[0.9, 0.8], [0.2, 0.4], [0.9, 0.2], [0.1, 0.3]])
    labels = torch.tensor([[1, 1], [0, 0], [1, 1], [0, 1]])
    source = Source(({"p": p}, labels), batch_size=3)
    found = clean_pass(Given(), source, Measures(), min_accuracy=1.0)
    assert found.correct == [True, True, False, False]
    assert found.positive == [True, False, True, False]
    assert clean_pass(Given(), source, Measures(), min_accuracy=0.5).correct == [True] * 4
    clean, chosen, digests = select(Given(), source, Measures(), Selection(), seed=0)
    assert chosen == [0, 1] and clean["map_selected"] == 1.0 and clean["samples_correct"] == 2
    assert clean["samples_total"] == 4 and clean["positives_selected"] == 1
    again = select(Given(), source, Measures(), Selection(), seed=0)[2]
    assert digests == again and [len(d) for d in digests] == [16, 16]  # one per chosen clip


def test_selection_checks_its_fields():
    """Selection refuses bad fields naming them, and normalises what it keeps."""
    assert_raises_naming(ValueError, "Selection.clips", Selection, "some")
    assert_raises_naming(TypeError, "Selection.clips", Selection, [0.5])
    assert_raises_naming(TypeError, "Selection.balance", Selection, "all", 1)
    assert_raises_naming(ValueError, "Selection.min_accuracy", Selection, min_accuracy=1.5)
    assert Selection("ALL").clips == "all" and Selection([3, 1]).clips == (3, 1)
