"""The demo's settings: :class:`DemoConfig`, the model recipes (:class:`ModelSpec`,
:func:`default_models`, :func:`surrogate_spec`) and the presets (:data:`PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._checks import replace_fields
from .checks import check_architecture, check_demo_config

__all__ = ["PRESETS", "DemoConfig", "ModelSpec", "default_models", "surrogate_spec"]

#: the surrogate's name in the paper (Push-Pull §4.2), by architecture
_PAPER_NAMES = {"nc_talknet": "ncTalkNet", "spec_talknet": "specTalkNet"}


@dataclass(frozen=True)
class ModelSpec:
    """How one demo model is trained.

    Attributes:
        key: the row label, e.g. ``"A"``.
        description: a short description for the table.
        avil_terms: AVIL terms added to TalkNet's loss (empty: none).
        adversarial: fine-tune with adversarial training.
        init_from: start from this model's weights (fine-tuning) instead of from scratch.
        architecture: ``"talknet"`` (the tiny TalkNet), ``"nc_talknet"`` (it without
            cross-attention) or ``"spec_talknet"`` (it on a linear spectrogram instead of the
            MFCC): the Push-Pull §4.2 variants of ``avrobust.models.talknet.TALKNET_VARIANTS``.

    Raises:
        TypeError, ValueError: an unknown ``architecture`` (the message lists the known ones).
    """

    key: str
    description: str
    avil_terms: tuple[str, ...] = ()
    adversarial: bool = False
    init_from: str | None = None
    architecture: str = "talknet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "architecture", check_architecture(self.architecture))


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of the demo. The presets are in :data:`PRESETS`.

    Attributes:
        train_clips: synthetic training clips.
        test_clips: held-out clips (clean mAP over all of them; attacks on a balanced subset).
        frames: frames per clip (25 fps).
        face_size: face crop side in pixels (TalkNet ``tiny`` with ``face_size=``); 16 by
            default: the tiny TalkNet reaches the same clean mAP as at 32 (98-99 %) at half the
            cost of a forward and backward pass (its 3-D convolution dominates on a CPU).
        difficulty: synthetic data difficulty in [0, 1].
        train_steps: Adam steps of the models trained from scratch (A, C, D, the surrogate).
        finetune_steps: adversarial fine-tuning steps of B (from A) and E (from D).
        batch_size: clips per training step.
        lr: Adam learning rate (cosine decay to a tenth; half of it when fine-tuning).
        avil_single: the single AVIL term of model C.
        avil_pair: the AVIL terms of models D and E.
        avil_weight: ``λ`` of every AVIL term (the paper: 0.1).
        adv_rule: the rule that makes the adversarial training examples (B1 of the paper: BIM).
        adv_steps: its iterations.
        adv_eps: its ``eps_av`` (> 0; fixed, not the table's budget, so that changing the
            grid or ``table_eps`` reuses every trained model).
        adv_ratio: share of each batch replaced by adversarial examples.
        rules: attack rules evaluated.
        modalities: attacked-modality sets evaluated: on (A) at every budget of ``eps_grid``
            (Fig. 3 of the paper is about the undefended model), on the other rows at every
            budget for ``"audio+visual"`` and at ``table_eps`` for the others (what the table
            of attacked modalities shows), which saves 40 % of the grid.
        eps_grid: the ``eps_av`` values (Fig. 3's x-axis).
        table_eps: the ``eps_av`` of the table (the paper: 5); must be in ``eps_grid``.
        attack_steps: iterations of every evaluation attack.
        surrogate: the architecture of the transfer attack's surrogate (:func:`surrogate_spec`):
            ``"nc_talknet"`` or ``"spec_talknet"`` (Push-Pull §4.2's ncTalkNet, specTalkNet).
        worst_case_steps: APGD steps of each run of the worst-case ensemble at ``table_eps``
            (>= 1; :class:`avrobust.evaluation.WorstCase`).
        worst_case_queries: Square's queries per clip in the worst-case ensemble (>= 1).
        worst_case_restarts: APGD runs on the clamped per-frame margin in the worst-case
            ensemble at ``table_eps`` (>= 1), before APGD-CE and Square.
        worst_case_kappa: the clamp of the per-frame margin in logits (>= 0): frames wrong by
            more stop pulling, so the steps go to the frames still right.
        worst_curve_steps: APGD steps of the lighter worst case at the grid's other budgets
            (one margin run, APGD-CE, Square; the same ``kappa`` and queries), which draws the
            worst case along the budget curve; 0: the worst case at ``table_eps`` only. The
            strong setting at the table's budget, where the verdicts are decided, costs 4x;
            on every budget it would take most of the demo's time.
        per_class: attacked clips per class (speaking / not speaking).
        tie_margin: mAP points (>= 0) by which two mAPs must differ to count as different when
            the findings compare them: a claim "X > Y" holds when the 95 % bootstrap interval
            of X - Y over the attacked clips lies above ``tie_margin`` and fails when it lies
            below (see :func:`avrobust.demo.findings`).
        extras: also run the inference-aware attack on (A) and the transfer attack (C) -> (A).
        seed: seed of the data, the initialisations, the batches and the attacks.
        seeds: training runs of every model row (1 to :data:`~avrobust.demo.checks.MAX_RUNS`):
            run ``r`` trains each model from its own seed (derived from ``seed``, the model and
            ``r``) on the same training clips; the runs are attacked on the same held-out clips.
            Every number of a row is the mean over its runs, and every interval and verdict
            covers the runs and the clips (:class:`~avrobust.demo.intervals.Intervals`: runs,
            then clips). With one run the verdicts describe that run, not a training method.
        models: the model recipes (default: :func:`default_models` of these settings).
    """

    train_clips: int = 512
    test_clips: int = 192
    frames: int = 16
    face_size: int = 16
    difficulty: float = 0.5
    train_steps: int = 200
    finetune_steps: int = 50
    batch_size: int = 16
    lr: float = 2e-3
    avil_single: tuple[str, ...] = ("l1",)
    avil_pair: tuple[str, ...] = ("l1", "l4")
    avil_weight: float = 0.1
    adv_rule: str = "bim"
    adv_steps: int = 2
    adv_eps: float = 20.0
    adv_ratio: float = 0.5
    rules: tuple[str, ...] = ("bim", "mim", "pgd")
    modalities: tuple[str, ...] = ("audio", "visual", "audio+visual")
    eps_grid: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0)
    table_eps: float = 20.0
    attack_steps: int = 5
    surrogate: str = "nc_talknet"
    worst_case_steps: int = 100
    worst_case_queries: int = 100
    worst_case_restarts: int = 2
    worst_case_kappa: float = 1.0
    worst_curve_steps: int = 25
    per_class: int = 12
    tie_margin: float = 2.0
    extras: bool = True
    seed: int = 0
    seeds: int = 3
    models: tuple[ModelSpec, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name, value in check_demo_config(self).items():  # every setting, named if wrong
            object.__setattr__(self, name, value)
        for name in ("avil_single", "avil_pair"):  # AVILoss refuses a term twice, when training
            terms = [t.lower() for t in getattr(self, name)]
            if len(set(terms)) != len(terms):
                raise ValueError(
                    f"{name}: expected distinct AVIL terms, got {list(getattr(self, name))}; "
                    "give each term once"
                )
        if not self.models:
            object.__setattr__(self, "models", default_models(self))

    def replace(self, **changes: Any) -> DemoConfig:
        """A copy with some settings changed (the model list is rebuilt from the AVIL terms).

        Raises:
            TypeError: an unknown setting; the message lists the known ones.
        """
        return replace_fields(self, {"models": (), **changes})

    def training_dict(self) -> dict[str, Any]:
        """The training settings (a model's cache key holds those of them its recipe uses)."""
        names = (
            "train_clips",
            "frames",
            "face_size",
            "difficulty",
            "train_steps",
            "finetune_steps",
            "batch_size",
            "lr",
            "avil_weight",
            "adv_rule",
            "adv_steps",
            "adv_ratio",
            "seed",
        )
        return {n: getattr(self, n) for n in (*names, "adv_eps")}

    def model_label(self, key: str) -> str:
        """``"(B) CE_all, BIM adversarial training"``: the row key and the recipe (also of the
        transfer surrogate, ``"S"``, unless a model of the table has that key)."""
        spec = next((s for s in self.models if s.key == key), None)
        if spec is None and key == "S":
            spec = surrogate_spec(self)
        return f"({key})" if spec is None else f"({key}) {spec.description}"


def default_models(config: DemoConfig) -> tuple[ModelSpec, ...]:
    """Rows A–E of the demo's table for ``config``'s AVIL terms."""
    single = " + ".join(t.upper() for t in config.avil_single)
    pair = " + ".join(t.upper() for t in config.avil_pair)
    rule = config.adv_rule.upper()
    return (
        ModelSpec("A", "CE_all (TalkNet)"),
        ModelSpec("B", f"CE_all, {rule} adversarial training", adversarial=True, init_from="A"),
        ModelSpec("C", f"CE_all + {single}", avil_terms=config.avil_single),
        ModelSpec("D", f"CE_all + {pair}", avil_terms=config.avil_pair),
        ModelSpec(
            "E",
            f"CE_all + {pair}, {rule} adversarial training",
            avil_terms=config.avil_pair,
            adversarial=True,
            init_from="D",
        ),
    )


def surrogate_spec(config: DemoConfig) -> ModelSpec:
    """The transfer attack's surrogate (key ``"S"``; not a row of the table): trained like (A),
    ``CE_all`` from scratch with no AVIL term and no adversarial training, but with the
    architecture ``config.surrogate`` (Push-Pull §4.2 crafts its black-box attacks on ncTalkNet
    or specTalkNet). Train or load it with :func:`avrobust.demo.training.load_or_train`."""
    name = _PAPER_NAMES[config.surrogate]
    return ModelSpec("S", f"{name}, CE_all (transfer surrogate)", architecture=config.surrogate)


PRESETS: dict[str, DemoConfig] = {
    # the main job: clean mAP >= 90 %, 3 training runs; 1146 s on 2 idle CPU cores (2026-12-08)
    "default": DemoConfig(),
    # a smoke run: every step, smaller everything (about 1 minute)
    "quick": DemoConfig(
        train_clips=128,
        test_clips=64,
        train_steps=50,
        finetune_steps=10,
        eps_grid=(20.0, 50.0),
        table_eps=20.0,
        attack_steps=2,
        worst_case_steps=20,
        worst_case_queries=50,
        worst_case_restarts=1,
        worst_curve_steps=10,
        per_class=4,
        seeds=1,
    ),
    # for the test suite: the same pipeline, minimal sizes (seconds)
    "test": DemoConfig(
        train_clips=16,
        test_clips=16,
        frames=8,
        face_size=16,
        train_steps=4,
        finetune_steps=2,
        batch_size=4,
        adv_steps=1,
        eps_grid=(50.0,),
        table_eps=50.0,
        attack_steps=1,
        worst_case_steps=2,
        worst_case_queries=8,
        worst_case_restarts=1,
        per_class=2,
        seeds=2,
    ),
}
