"""``AVILoss``: the weighted sum of the Push-Pull interaction terms (eq. 11 without the CE part)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_choice, check_int, check_number
from .functional import TERMS, frame_groups

__all__ = ["AVILoss"]

_ALL = ("l1", "l2", "l3", "l4")


def _parse_terms(terms: Sequence[str] | None, weight: object) -> tuple[str, ...]:
    if terms is None and isinstance(weight, Mapping):
        terms = [str(key) for key in weight]
    if terms is None:
        return _ALL
    if isinstance(terms, str) or not isinstance(terms, Sequence):
        raise TypeError(f"terms: expected a sequence of names such as ('l1', 'l4'), got {terms!r}")
    names = tuple(check_choice(t, f"terms[{i}]", _ALL) for i, t in enumerate(terms))
    if not names or len(set(names)) != len(names):
        raise ValueError(f"terms: expected distinct names from {list(_ALL)}, got {list(terms)}")
    return names


def _parse_weights(terms: tuple[str, ...], weight: object) -> dict[str, float]:
    if isinstance(weight, Mapping):
        keys = {check_choice(k, "weight key", _ALL) for k in weight}
        if keys != set(terms):
            raise ValueError(
                f"weight: the keys must be the terms {list(terms)}, got {sorted(map(str, weight))}"
            )
        lowered = {str(k).lower(): v for k, v in weight.items()}
        values = [lowered[t] for t in terms]
    elif isinstance(weight, Sequence) and not isinstance(weight, str):
        if len(weight) != len(terms):
            raise ValueError(
                f"weight: expected one weight per term ({len(terms)} for {list(terms)}), "
                f"got {len(weight)}"
            )
        values = list(weight)
    else:
        values = [weight] * len(terms)
    return {t: check_number(v, f"weight[{t!r}]", min_value=0.0) for t, v in zip(terms, values)}


class AVILoss(nn.Module):
    r"""Audio-visual interaction loss of Push-Pull (eq. 11): ``Σ_j λ_j L_j`` to add to the task loss.

    The terms are those of :mod:`avrobust.losses.functional`, each a quantity to minimise:
    ``"l1"`` inter-class dispersion, ``"l2"`` intra-class compactness, ``"l3"`` audio-visual
    centre alignment, ``"l4"`` per-frame audio-visual distance. The paper trains with all four at
    ``λ = 0.1``; its most robust pair is ``("l1", "l4")``.

    More than two classes (``num_classes=C``, our extension; the paper has speech and
    non-speech only): labels are class indices in ``[0, C)`` and there is one centre per class
    present in the batch. ``"l1"`` is the mean, over the pairs of present classes, of the
    pair's centre cosines (audio plus visual; still in [-2, 2]); ``"l2"``, ``"l3"``, ``"l4"``
    sum the paper's per-class parts over the present classes (so they grow with the number of
    classes present). With two classes every term is the paper's; see ``docs/avil.md``.

    Args:
        terms: names of the terms to use; ``None`` means all four, or the keys of ``weight`` when
            it is a mapping.
        weight: ``λ`` (>= 0) for every term, one per term (a sequence aligned with ``terms``), or
            a mapping ``{term: λ}``.
        sync: under an initialised ``torch.distributed`` group, compute every centre, count and
            average over the global batch of all ranks (differentiable all-gather), so the loss on
            ``W`` processes × ``B`` clips equals the loss on one process × ``W·B`` clips. Without a
            process group (or with one rank) the batch is used as it is.
        check_finite: refuse NaN/Inf embeddings with a ``ValueError`` naming ``z_audio`` or
            ``z_visual`` (default). The check is one ``torch.isfinite(...).all()`` per embedding
            tensor, read in the device sync the label check already makes, so it adds no sync;
            ``False`` skips it, and a NaN embedding then gives a NaN loss.
        num_classes: the class count ``C`` (>= 2; default 2, the paper's speech and
            non-speech, whose labels must be 0/1). Under ``sync`` every rank must use the same.

    Attributes:
        terms: the term names, in order.
        weights: ``{term: λ}``.
        last_terms: ``{term: value}`` of the last forward, unweighted and detached (for logging).

    Example:
        >>> import torch
        >>> crit = AVILoss(weight={"l1": 0.1, "l4": 0.05})
        >>> z_audio, z_visual = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
        >>> labels = torch.arange(20).reshape(2, 10) % 2
        >>> loss = crit(z_audio, z_visual, labels)
        >>> sorted(crit.last_terms), loss.ndim
        (['l1', 'l4'], 0)
    """

    def __init__(
        self,
        terms: Sequence[str] | None = None,
        weight: float | Sequence[float] | Mapping[str, float] = 0.1,
        *,
        sync: bool = False,
        check_finite: bool = True,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", min_value=2)
        self.terms = _parse_terms(terms, weight)
        self.weights = _parse_weights(self.terms, weight)
        for name, flag in (("sync", sync), ("check_finite", check_finite)):
            check_bool(flag, name)
        self.sync = sync
        self.check_finite = check_finite
        self.last_terms: dict[str, Tensor] = {}

    def extra_repr(self) -> str:
        text = f"weights={self.weights}, sync={self.sync}, check_finite={self.check_finite}"
        return text + (f", num_classes={self.num_classes}" if self.num_classes != 2 else "")

    def compute_terms(
        self, z_audio: Tensor, z_visual: Tensor, labels: Tensor, mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Each selected term, unweighted and differentiable.

        Args:
            z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings (floating point).
            z_visual: visual frame embeddings, same shape as ``z_audio`` (``D`` may differ only
                when neither ``"l3"`` nor ``"l4"`` is used).
            labels: ``(B, T)`` or ``(N,)`` frame labels, 1 = speech, 0 = non-speech (int/bool);
                class indices in ``[0, num_classes)`` for more classes.
            mask: optional bool shaped like ``labels``; ``False`` = padded frame, ignored.

        Returns:
            ``{term: 0-d tensor}``.

        Raises:
            TypeError, ValueError: on bad input, NaN/Inf embeddings unless ``check_finite=False``
                (see :func:`~avrobust.losses.functional.frame_groups`).
        """
        same_dim = bool({"l3", "l4"} & set(self.terms))
        groups = frame_groups(z_audio, z_visual, labels, mask, same_dim=same_dim, sync=self.sync,
                              check_finite=self.check_finite,
                              num_classes=self.num_classes)  # fmt: skip
        return {name: TERMS[name](groups) for name in self.terms}

    def forward(
        self, z_audio: Tensor, z_visual: Tensor, labels: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """``Σ_j λ_j L_j`` over the selected terms; arguments as :meth:`compute_terms`.

        Returns:
            0-d tensor (float32 for half-precision inputs), connected to the embeddings' graph
            even when it is 0 (a batch without one class).
        """
        values = self.compute_terms(z_audio, z_visual, labels, mask)
        self.last_terms = {name: value.detach() for name, value in values.items()}
        total = torch.stack([self.weights[name] * value for name, value in values.items()])
        return total.sum()
