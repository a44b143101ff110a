"""``avrobust.wrap``: the one call that gives a third-party model the avrobust contract."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from .wrapped import WrappedModel

__all__ = ["wrap"]


def wrap(
    model: nn.Module,
    inputs: Sequence[str] | Mapping[str, int | str] | None = None,
    *,
    forward: Any = None,
    transforms: Mapping[str, Any] | None = None,
    output: str = "logits",
    guard: float | None = None,
    logits: Any = None,
    heads: Mapping[str, Any] | None = None,
    embeddings: Mapping[str, str] | None = None,
    head_weights: Mapping[str, float] | None = None,
) -> WrappedModel:
    """Give any ``nn.Module`` the avrobust contract: ``model(**inputs) -> AVOutput``.

    A call of the wrapper runs, in order: the ``transforms`` on their inputs; the model (its
    ``forward``, or ``forward=``); the ``logits`` and ``heads`` selectors on the raw output;
    the ``output`` conversion; the embedding capture. Recipes for common third-party
    interfaces are in ``docs/wrapping.md``.

    Args:
        model: the third-party model.
        inputs: how modality names reach the model: a list of names in positional order
            (``["audio", "visual"]`` calls ``model(audio, visual)``), or a dict mapping each name to
            a position or keyword (``{"audio": 0, "visual": "video"}`` calls
            ``model(audio, video=visual)``). ``None`` passes ``model(**inputs)`` through.
        forward: for a model without a usable ``forward``. Either a function called as
            ``forward(model, **inputs)`` (``inputs`` keyed by modality name) returning the raw
            output, or a chain: a list of steps run in order, each given the previous result.
            The first step gets the modality inputs, routed as ``inputs`` says; a step that
            got a tuple or list gets it unpacked as positional arguments, anything else as
            one argument. A step is a method name of the model (``"forward_audio_frontend"``),
            a function, an ``nn.Module`` (registered on the wrapper), or a dict
            ``{modality: method name or function}`` applied per modality, the result staying
            the modality inputs (e.g. two front-ends). TalkNet's official chain is
            ``[{"audio": "forward_audio_frontend", "visual": "forward_visual_frontend"},
            "forward_cross_attention", "forward_audio_visual_backend"]``. A model whose
            class has no ``forward`` needs this option (the error lists its ``forward*``
            methods).
        transforms: per modality, a differentiable ``nn.Module`` (or function) applied to that
            input inside the wrapper before the model sees it (e.g.
            ``{"audio": avrobust.transforms.ASDMFCC()}``): the attack perturbs the raw input
            (waveform, pixels) within its budget, the model gets its features. The modules are
            ``wrapped.transforms`` and follow ``eval()`` and ``.to()``.
        output: what the model's logits and heads are: ``"logits"`` (unnormalised scores),
            ``"probabilities"`` (e.g. after a softmax; turned into ``log(max(p, guard))``,
            whose softmax is ``p``, so the attack objective is the model's negative
            log-likelihood) or ``"log_probabilities"`` (used as they are). Declared
            probabilities outside [0, 1], or log-probabilities above 0, raise at the call.
            Logits whose rows all lie in [0, 1] and sum to 1 warn once per wrapper: they look
            like undeclared probabilities, which would make every attack weaker; declared
            probabilities whose rows do not sum to 1 warn once too (checked on the first call).
        guard: with ``output="probabilities"``, the floor of ``p`` before the log, in
            ``(0, 1)``; ``None``: the smallest normal number of the output's dtype
            (``torch.finfo(dtype).tiny``), so only exact zeros are moved.
        logits: where the logits are in the raw output. An index (an ``int`` into a
            tuple/list; a ``bool`` is refused), a key (dict) or attribute name; a function of
            the output, which also gets the inputs dict when it takes two positional
            parameters (``lambda out, inputs: out.view(inputs["visual"].shape[0], -1, 2)``
            turns ``(B·T, C)`` into ``(B, T, C)`` for any clip length) or a keyword parameter
            named ``inputs``; an ``nn.Module`` of the output (registered on the wrapper, so it
            follows ``eval()`` and ``.to()``, which a function calling an outside module does
            not); or a list of these applied in turn (``[0, classifier, to_frames]``).
            ``None``: the output itself if it is a tensor, element 0 of a tuple, key
            ``"logits"`` of a dict, or attribute ``.logits``.
        heads: extra training heads by name, each with a selector as for ``logits``.
        embeddings: per name, the dotted path of a submodule (as in ``model.named_modules()``)
            whose forward output (its first element if it returns a tuple) is captured as that
            embedding, e.g. ``(B, D)`` or ``(B, T, D)``. The submodule must run exactly once per
            forward: one that does not run, or runs twice (a shared encoder used for two
            inputs), raises at the call rather than give a missing or ambiguous embedding. The
            capturing hooks exist only while a wrapped call runs, so wrapping a model many times
            leaves no hooks on it and a direct call of ``model`` captures nothing.
        head_weights: weights (finite, >= 0) of the extra heads in the ``"training"`` attack
            objective (default 1.0 each).

    Returns:
        A :class:`WrappedModel`; its ``.model`` is ``model`` itself (not a copy).

    Raises:
        TypeError: a selector that is not an ``int``, ``str``, function or module (e.g.
            ``True``); an option that is not a dict; modality names that are not strings; a
            model without ``forward`` and no ``forward=``; a chain step of the wrong kind.
        ValueError: an embedding path that is not a submodule (the message lists them); a
            method name the model lacks; a transform or per-modality step for a modality not
            in ``inputs``; an unknown ``output``; at the call, a logits key or index that the
            output lacks (listing what exists), or an embedding submodule that did not run or
            ran more than once (naming it).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class TwoInput(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.a, self.v = nn.Linear(4, 3), nn.Linear(6, 3)
        ...     def forward(self, wave, frames):
        ...         return {"scores": self.a(wave) + self.v(frames)}
        >>> m = wrap(TwoInput(), ["audio", "visual"], logits="scores", embeddings={"audio": "a"})
        >>> out = m(audio=torch.zeros(2, 4), visual=torch.zeros(2, 6))
        >>> out.logits.shape, out.embeddings["audio"].shape
        (torch.Size([2, 3]), torch.Size([2, 3]))
    """
    return WrappedModel(
        model,
        inputs,
        logits,
        heads,
        embeddings,
        head_weights,
        forward=forward,
        transforms=transforms,
        output=output,
        guard=guard,
    )
