"""Attack objectives: functions ``(AVOutput, labels) -> (B,)`` per-sample losses to maximise.

Push-Pull §3.2 distinguishes the *training-aware* attacker, who maximises the model's full
training loss (for TalkNet ``CE_av + 0.4 CE_a + 0.4 CE_v``, eq. 4), from the *inference-aware*
attacker, who maximises the loss of the inference head alone (eq. 3). Beside cross-entropy, the
margin of Carlini & Wagner (2017) and the DLR loss of Croce & Hein (2020) score the logits only:
they do not saturate once a sample is fooled, and DLR does not change when the logits are scaled.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_bool, check_number, describe
from .._types import AVOutput

__all__ = [
    "CrossEntropyObjective",
    "DLRObjective",
    "MarginObjective",
    "Objective",
    "as_objective",
    "check_labels",
    "margin",
    "per_sample_ce",
]

OBJECTIVE_NAMES = ("training", "inference", "margin", "dlr")

Objective = Callable[[AVOutput, Tensor], Tensor]
"""An attack objective: ``(output, labels) -> (B,)`` per-sample losses, maximised by the attack."""


def check_labels(labels: Tensor, logits: Tensor, name: str = "labels") -> Tensor:
    """Check labels against logits; returns labels shaped like ``logits.shape[:-1]``.

    Clip-level labels ``(B,)`` go with clip logits ``(B, C)``; with frame logits ``(B, T, C)``
    they apply to every frame. Frame-level labels ``(B, T)`` need frame logits ``(B, T, C)``.

    Raises:
        TypeError: labels not an integer (or bool) tensor.
        ValueError: a shape that fits neither, or a class index outside ``[0, C)``. Both say
            how to convert one-hot labels (``labels.argmax(-1)``) and whole-number floats
            (``labels.long()``).
    """
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(
            f"{name}: expected integer class indices, got dtype {labels.dtype}"
            f"{_labels_hint(labels, logits, name)}"
        )
    target = logits.shape[:-1]
    if labels.shape != target:
        if labels.ndim == 1 and logits.ndim == 3 and labels.shape[0] == logits.shape[0]:
            labels = labels[:, None].expand(target)
        else:
            if logits.ndim == 3:
                wanted = f"{tuple(target)} (frame-level) or ({target[0]},) (clip-level)"
            else:  # clip logits: frame labels would need frame logits (B, T, C)
                wanted = f"{tuple(target)} (clip-level; frame labels need logits (B, T, C))"
            raise ValueError(
                f"{name}: expected shape {wanted} to match logits of shape "
                f"{tuple(logits.shape)}, got {tuple(labels.shape)}"
                f"{_labels_hint(labels, logits, name)}"
            )
    num_classes = logits.shape[-1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{name}: class indices must lie in [0, {num_classes - 1}] for logits with "
            f"{num_classes} classes, got min {int(labels.min())}, max {int(labels.max())}"
        )
    return labels.long()


def _labels_hint(labels: Tensor, logits: Tensor, name: str) -> str:
    """How to convert labels of the wrong form, for the error (``""`` when nothing fits)."""
    x, classes = labels.detach(), logits.shape[-1]
    if x.is_complex() or x.numel() == 0:
        return ""
    if x.is_floating_point() and x.shape in (logits.shape[:-1], logits.shape[:1]):
        if bool((x == x.round()).all()):
            return f"; they hold whole numbers: pass {name}.long()"
    if x.ndim >= 2 and x.shape[-1] == classes:
        in_unit = bool(((x >= 0) & (x <= 1)).all())
        rows = x.double().sum(-1)
        if in_unit and bool(((rows - 1).abs() <= 1e-5 * classes).all()):
            binary = bool(((x == 0) | (x == 1)).all())
            what = "one-hot" if binary else "class probabilities (one-hot or soft labels)"
            return (
                f"; they look {what} (shape {tuple(x.shape)}, rows over the {classes} classes "
                f"summing to 1): pass class indices, {name}.argmax(-1)"
            )
    return ""


def per_sample_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy per sample: ``(B,)``; frame-level logits are averaged over frames (eq. 3)."""
    ce = F.cross_entropy(logits.movedim(-1, 1), labels, reduction="none")
    return ce if ce.ndim == 1 else ce.flatten(1).mean(dim=1)


class CrossEntropyObjective:
    """Weighted per-sample cross-entropy over the logits and (optionally) every extra head.

    ``loss_i = w_logits * CE(logits_i, y_i) + sum_h w_h * CE(heads[h]_i, y_i)``; frame-level
    cross-entropy is averaged over frames, so every clip counts the same.

    Args:
        head_weights: weight per extra head; a head missing from the mapping weighs
            ``default_head_weight``. ``None`` uses no extra head (the inference-aware objective).
            A name with a weight > 0 that the model's output lacks is an error at the call.
        logits_weight: weight of the inference head.
        default_head_weight: weight for heads not named in ``head_weights``.

    Example:
        >>> import torch
        >>> out = AVOutput(torch.zeros(2, 3), heads={"audio": torch.zeros(2, 3)})
        >>> CrossEntropyObjective({"audio": 0.4})(out, torch.tensor([0, 1]))
        tensor([1.5381, 1.5381])
    """

    def __init__(
        self,
        head_weights: Mapping[str, float] | None = None,
        logits_weight: float = 1.0,
        default_head_weight: float = 1.0,
    ) -> None:
        self.use_heads = head_weights is not None
        self.head_weights = {
            str(k): check_number(v, f"head_weights[{k!r}]", min_value=0.0)
            for k, v in (head_weights or {}).items()
        }
        self.logits_weight = check_number(logits_weight, "logits_weight", min_value=0.0)
        self.default_head_weight = check_number(
            default_head_weight, "default_head_weight", min_value=0.0
        )

    def __call__(self, out: AVOutput, labels: Tensor) -> Tensor:
        loss = self.logits_weight * per_sample_ce(out.logits, labels)
        if self.use_heads:
            absent = [n for n, w in self.head_weights.items() if w and n not in out.heads]
            if absent:
                raise ValueError(
                    f"head_weights: weights for the heads {absent}, but the model's output has "
                    f"the heads {sorted(out.heads)}; name the heads as the output does (a typo?), "
                    "or use objective='inference' to attack the logits alone"
                )
            for name, head in out.heads.items():
                weight = self.head_weights.get(name, self.default_head_weight)
                if weight:
                    loss = loss + weight * per_sample_ce(head, _head_labels(head, labels, name))
        return loss

    def __repr__(self) -> str:
        heads = self.head_weights if self.use_heads else None
        return f"CrossEntropyObjective(head_weights={heads}, logits_weight={self.logits_weight:g})"


def _head_labels(head: Tensor, labels: Tensor, name: str) -> Tensor:
    """The labels for an extra head: as they are when the head is shaped like the logits, over
    every frame for a frame head ``(B, T, C)`` beside clip labels ``(B,)``.

    Raises:
        ValueError: any other shape, naming the head (a head with frames folded into its batch,
            ``(B*T, C)``, is the usual case).
    """
    classes = head.shape[-1] if head.ndim else 0
    if labels.numel() and int(labels.max()) >= classes:
        raise ValueError(
            f"model output heads[{name!r}]: {classes} class(es) (shape {tuple(head.shape)}), "
            f"but the labels reach class {int(labels.max())}; a head scores the logits' classes "
            "in its last dimension, or is left out of the objective with objective='inference'"
        )
    if head.shape[:-1] == labels.shape:
        return labels
    if head.ndim == 3 and labels.ndim == 1 and head.shape[0] == labels.shape[0]:
        return labels[:, None].expand(head.shape[:-1])
    batch = labels.shape[0]
    raise ValueError(
        f"model output heads[{name!r}]: shape {tuple(head.shape)} does not fit the labels "
        f"of shape {tuple(labels.shape)} (batch {batch}); a head is (B, C) or (B, T, C) like "
        "the logits, with the inputs' batch first (a head with the frames folded into its "
        f"batch, (B*T, C), must be reshaped to (B, T, C)). Reshape it where it is selected: "
        f"avrobust.wrap(model, heads={{{name!r}: [<its selector>, lambda h: h.view(B, -1, "
        "h.shape[-1])]}), or leave the heads out of the objective with objective='inference'"
    )


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    r"""The Carlini–Wagner margin per row: :math:`\max_{i \ne y} z_i - z_y`, shape ``logits.shape[:-1]``.

    Positive exactly when another class beats class ``y`` (the sample, or frame, is misclassified).

    Args:
        logits: ``(..., C)`` scores, ``C >= 2``.
        labels: ``logits.shape[:-1]`` integer class indices.
    """
    true = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    mask = F.one_hot(labels, logits.shape[-1]).bool()
    other = logits.masked_fill(mask, -float("inf")).amax(dim=-1)
    return other - true


class _LogitObjective:
    """Shared by the margin and DLR objectives: the frame handling and ``(B,)`` reduction."""

    def __init__(self, frame_level: bool) -> None:
        self.frame_level = check_bool(frame_level, f"{type(self).__name__}.frame_level")

    def values(self, logits: Tensor, labels: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, out: AVOutput, labels: Tensor) -> Tensor:
        logits = out.logits
        if logits.ndim == 3 and not self.frame_level:
            if labels.ndim == 2:  # one label per clip: the most frequent frame label
                labels = torch.mode(labels, dim=1).values
            logits = logits.mean(dim=1)
        value = self.values(logits, labels)
        return value if value.ndim == 1 else value.mean(dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(frame_level={self.frame_level})"


class MarginObjective(_LogitObjective):
    r"""The Carlini–Wagner margin: :math:`\max_{i \ne y} z_i - z_y` on the logits (per sample).

    Maximised, it pushes the best other class above the true one; it is positive exactly when
    the sample is misclassified and, unlike cross-entropy, keeps its gradient once it is. With
    ``targeted=True`` in the attack, ``labels`` are targets and the attack lowers
    :math:`\max_{i \ne t} z_i - z_t`, the targeted CW loss. Extra heads are ignored.

    **Clamped at kappa.** With ``kappa`` set, each margin (each frame's, for frame logits with
    ``frame_level=True``) is clamped, :math:`\min(m, \kappa)`, before the mean over frames: a
    frame already wrong by ``kappa`` logits adds a constant and no gradient, so the attack's
    effort goes to the frames still right. For untargeted attacks (a targeted one lowers it).

    Args:
        frame_level: for frame logits ``(B, T, C)``: ``True`` (default) takes the margin of
            every frame against its label and averages over frames (as cross-entropy does);
            ``False`` averages the logits over frames first and takes the margin of that clip
            score, against the clip's most frequent frame label. Clip logits ``(B, C)`` are
            unaffected.
        kappa: the clamp, in logits (a difference of two logits), ``>= 0``; ``None`` (default)
            clamps nothing.

    Example:
        >>> import torch
        >>> MarginObjective()(AVOutput(torch.tensor([[2.0, 0.5, 1.0]])), torch.tensor([0]))
        tensor([-1.])
        >>> frames = torch.tensor([[[0.0, 3.0], [1.0, 0.0]]])  # (1, 2, 2): margins 3 and -1
        >>> MarginObjective(kappa=1.0)(AVOutput(frames), torch.tensor([[0, 0]]))
        tensor([0.])
    """

    def __init__(self, *, frame_level: bool = True, kappa: float | None = None) -> None:
        super().__init__(frame_level)
        self.kappa = None if kappa is None else check_number(kappa, "kappa", min_value=0.0)

    def values(self, logits: Tensor, labels: Tensor) -> Tensor:
        m = margin(logits, labels)
        return m if self.kappa is None else m.clamp_max(self.kappa)

    def __repr__(self) -> str:
        return f"MarginObjective(frame_level={self.frame_level}, kappa={self.kappa})"


class DLRObjective(_LogitObjective):
    r"""The difference-of-logits-ratio loss of Croce & Hein (2020), per sample.

    Untargeted: :math:`\mathrm{DLR} = -\frac{z_y - \max_{i \ne y} z_i}{z_{\pi_1} - z_{\pi_3}
    + g}`, with :math:`z_{\pi_1} \ge z_{\pi_2} \ge \dots` the sorted logits and :math:`g`
    the numerical ``guard``. It is the margin divided by a spread of the logits, so scaling or
    shifting the logits changes nothing (a defense cannot hide behind a temperature). Needs
    ``C >= 3`` classes.

    Targeted (``targeted=True``, used with an attack's ``targeted=True``, ``labels`` the targets
    ``t``): :math:`\frac{\max_{i \ne t} z_i - z_t}{z_{\pi_1} - (z_{\pi_3} + z_{\pi_4})/2 + g}`,
    which the attack lowers. The paper's numerator is :math:`z_y - z_t` with the true class
    :math:`y`; an objective sees only the targets, and the best other class equals :math:`y`
    wherever the true class leads the non-target ones (at the clean input of every correctly
    classified sample), so the two agree there. Needs ``C >= 4`` classes.

    Args:
        targeted: the targeted denominator (see above).
        frame_level: as for :class:`MarginObjective`.
        guard: added to the denominator so it is never 0 (1e-12 as in the paper; the sum is
            also kept at least the smallest normal number of the dtype, for float16).

    Raises:
        ValueError: (when called) fewer classes than the loss needs.
    """

    def __init__(
        self, *, targeted: bool = False, frame_level: bool = True, guard: float = 1e-12
    ) -> None:
        super().__init__(frame_level)
        self.targeted = check_bool(targeted, "DLRObjective.targeted")
        self.guard = check_number(guard, "DLRObjective.guard", min_value=0.0)

    def values(self, logits: Tensor, labels: Tensor) -> Tensor:
        need = 4 if self.targeted else 3
        if logits.shape[-1] < need:
            kind = "targeted " if self.targeted else ""
            raise ValueError(
                f"objective: the {kind}DLR loss needs logits with at least {need} classes, got "
                f"shape {tuple(logits.shape)}; use objective='margin' (its numerator) instead"
            )
        top = logits.topk(need, dim=-1).values
        third = top[..., 2] if not self.targeted else (top[..., 2] + top[..., 3]) / 2
        spread = (top[..., 0] - third + self.guard).clamp_min(torch.finfo(logits.dtype).tiny)
        return margin(logits, labels) / spread

    def __repr__(self) -> str:
        return (
            f"DLRObjective(targeted={self.targeted}, frame_level={self.frame_level}, "
            f"guard={self.guard:g})"
        )


def as_objective(objective: Any, model: nn.Module, *, targeted: bool = False) -> Objective:
    """Resolve the ``objective`` argument of an attack.

    ``"training"``: :class:`CrossEntropyObjective` over the logits and every head, with head
    weights from the model's ``head_weights`` attribute when it has one (TalkNet: 0.4 each) and
    1.0 otherwise. ``"inference"``: cross-entropy of the logits only. ``"margin"``:
    :class:`MarginObjective`. ``"dlr"``: :class:`DLRObjective` (its targeted form when
    ``targeted``). Names are case-insensitive (``"Margin"``). A callable is used as is.

    Raises:
        ValueError: an unknown name. TypeError: neither a name nor a callable; a class (not
        an instance); a PyTorch loss (``nn.CrossEntropyLoss()``, ``F.cross_entropy``: they
        take logits, not :class:`AVOutput`); a callable that cannot take two arguments.
    """
    if callable(objective) and not isinstance(objective, str):
        return _check_callable(objective)
    if isinstance(objective, str):  # case-insensitive, as the rule names are
        objective = objective.lower()
    if objective == "training":
        weights = getattr(model, "head_weights", None)
        return CrossEntropyObjective(dict(weights) if isinstance(weights, Mapping) else {})
    if objective == "inference":
        return CrossEntropyObjective(None)
    if objective == "margin":
        return MarginObjective()
    if objective == "dlr":
        return DLRObjective(targeted=targeted)
    names = ", ".join(repr(n) for n in OBJECTIVE_NAMES)
    if isinstance(objective, str):
        raise ValueError(f"objective: expected {names} or a callable, got {objective!r}")
    raise TypeError(
        f"objective: expected {names} or a callable "
        f"(AVOutput, labels) -> (B,) losses, got {describe(objective)}"
    )


_PER_SAMPLE = (
    "an attack objective is called as objective(AVOutput, labels) and returns (B,) per-sample "
    "losses"
)


def _check_callable(objective: Any) -> Objective:
    """A callable objective that can be called as ``objective(output, labels)``.

    Raises:
        TypeError: a class, a PyTorch loss of logits, or a signature that cannot take two
            positional arguments (each message says what to pass instead).
    """
    name = getattr(objective, "__name__", type(objective).__name__)
    if isinstance(objective, type):
        raise TypeError(
            f"objective: got the class {name}, not an objective; pass an instance, {name}()"
        )
    module = getattr(objective, "__module__", None) or ""
    if isinstance(objective, nn.modules.loss._Loss) or module.startswith("torch.nn.functional"):
        raise TypeError(
            f"objective: got the PyTorch loss {name}, which takes logits; {_PER_SAMPLE}: pass "
            "'inference' (the cross-entropy of the logits), or "
            "lambda out, labels: F.cross_entropy(out.logits, labels, reduction='none')"
        )
    forward = objective.forward if isinstance(objective, nn.Module) else objective
    try:
        signature = inspect.signature(forward)
    except (TypeError, ValueError):  # no signature to read (a builtin): trust the call
        return objective  # type: ignore[no-any-return]
    try:
        signature.bind(None, None)
    except TypeError:
        raise TypeError(
            f"objective: {name}{signature} cannot be called with two arguments; {_PER_SAMPLE} "
            "(e.g. lambda out, labels: out.logits[..., 1] - out.logits[..., 0])"
        ) from None
    return objective  # type: ignore[no-any-return]
