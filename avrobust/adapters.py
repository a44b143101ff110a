"""Give any third-party ``nn.Module`` the avrobust contract: ``model(**inputs) -> AVOutput``."""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from torch import Tensor, nn

from ._checks import check_number, describe
from ._types import AVOutput

__all__ = ["WrappedModel", "as_avoutput", "wrap"]

Selector = int | str | Callable[[Any], Tensor]
"""Where to find a tensor in a model's output: a position (tuple/list), a key or attribute
name (dict/object), or a function of the whole output."""


def _available(names: Sequence[str], limit: int = 60) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"


def _pick(output: Any, selector: Selector, what: str) -> Tensor:
    """Take one tensor out of a model's raw output, with an error that says what exists."""
    if callable(selector) and not isinstance(selector, (int, str)):
        value = selector(output)
    elif isinstance(selector, int) and isinstance(output, (tuple, list)):
        if not -len(output) <= selector < len(output):
            raise ValueError(
                f"{what}: index {selector} is out of range for a model output of "
                f"{len(output)} elements"
            )
        value = output[selector]
    elif isinstance(selector, str) and isinstance(output, Mapping):
        if selector not in output:
            raise ValueError(
                f"{what}: key {selector!r} not in the model's output; "
                f"available keys: {_available([str(k) for k in output])}"
            )
        value = output[selector]
    elif isinstance(selector, str) and hasattr(output, selector):
        value = getattr(output, selector)
    else:
        raise ValueError(f"{what}: cannot apply selector {selector!r} to {describe(output)}")
    if not isinstance(value, Tensor):
        raise TypeError(f"{what}: expected a tensor, got {describe(value)}")
    return value


def _default_logits(output: Any) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    if isinstance(output, Mapping):
        if "logits" in output and isinstance(output["logits"], Tensor):
            return output["logits"]
        keys = _available([str(k) for k in output])
        raise ValueError(
            f"model output: found no 'logits' key among {keys}; "
            "pass logits='<key>' to avrobust.wrap"
        )
    if isinstance(getattr(output, "logits", None), Tensor):
        return output.logits
    raise TypeError(
        f"model output: cannot find logits in {describe(output)}; wrap the model with "
        "avrobust.wrap(model, logits=<index, key or function>)"
    )


def _check_selector(selector: Any, name: str) -> Selector:
    """A selector is an index (``int``, not ``bool``), a key or attribute name, or a function."""
    if isinstance(selector, str) or (callable(selector) and not isinstance(selector, Tensor)):
        return selector  # type: ignore[no-any-return]
    if not isinstance(selector, bool):
        try:
            return operator.index(selector)  # NumPy integers and 0-d integer tensors too
        except TypeError:
            pass
    raise TypeError(
        f"{name}: expected an index (int; a bool is not an index), a key or attribute name (str) "
        f"or a function of the model's output, got {describe(selector)}"
    )


def _check_mapping(value: Any, name: str, what: str) -> dict[str, Any]:
    """``None`` -> ``{}``; otherwise a mapping with string keys, as a dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name}: expected a dict of names to {what}, got {describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{name}: names must be strings, got {describe(key)}")
    return dict(value)


def _record(store: list[Any], module: nn.Module, args: Any, output: Any) -> None:
    """Forward hook: keep every output of the submodule during one wrapped call."""
    store.append(output)


def _captured(name: str, path: str, outputs: list[Any]) -> Tensor:
    """The one output an embedding submodule gave in a forward, or an error saying why not."""
    where = f"embeddings[{name!r}]: submodule {path!r}"
    if not outputs:
        raise ValueError(
            f"{where} did not run in the model's forward, so there is no embedding to capture "
            "(the hook sees calls as module(x), not module.forward(x)); name a submodule that "
            "runs, or drop this embedding"
        )
    if len(outputs) > 1:
        raise ValueError(
            f"{where} ran {len(outputs)} times in one forward (a shared encoder?), so which call "
            "is the embedding is ambiguous; name a submodule that runs once per forward, or "
            "write an adapter returning avrobust.AVOutput (see docs/extending.md)"
        )
    value = outputs[0][0] if isinstance(outputs[0], (tuple, list)) and outputs[0] else outputs[0]
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{where} returned {describe(outputs[0])}; expected a tensor (or a tuple whose "
            "first element is one)"
        )
    return value


def as_avoutput(output: Any) -> AVOutput:
    """Read a model's output as :class:`AVOutput` (an ``AVOutput`` or a bare logits tensor).

    Raises:
        TypeError: any other output (the message points to :func:`wrap`), or an ``AVOutput``
            whose logits, heads or embeddings are not tensors.
    """
    if isinstance(output, AVOutput):
        if not isinstance(output.logits, Tensor):
            raise TypeError(
                f"model output: AVOutput.logits: expected a tensor, got {describe(output.logits)}"
            )
        for field in ("heads", "embeddings"):
            for key, value in getattr(output, field).items():
                if not isinstance(value, Tensor):
                    raise TypeError(
                        f"model output: AVOutput.{field}[{key!r}]: expected a tensor, "
                        f"got {describe(value)}"
                    )
        return output
    if isinstance(output, Tensor):
        return AVOutput(output)
    raise TypeError(
        f"model output: expected avrobust.AVOutput or a logits tensor, got {describe(output)}; "
        "wrap the model with avrobust.wrap(model, logits=..., heads=...)"
    )


class WrappedModel(nn.Module):
    """A third-party model seen through the avrobust contract (built by :func:`wrap`).

    Call it as ``wrapped(**inputs)`` with one tensor per modality name; it returns
    :class:`AVOutput`. The wrapped module is ``wrapped.model`` (so its state-dict keys gain a
    ``model.`` prefix); embeddings are captured by forward hooks on named submodules, registered
    for the duration of each call and removed after it.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Sequence[str] | Mapping[str, int | str] | None = None,
        logits: Selector | None = None,
        heads: Mapping[str, Selector] | None = None,
        embeddings: Mapping[str, str] | None = None,
        head_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
        self.model = model
        self._routes = self._check_inputs(inputs)
        self._logits = None if logits is None else _check_selector(logits, "logits")
        self._heads = {
            name: _check_selector(s, f"heads[{name!r}]")
            for name, s in _check_mapping(heads, "heads", "selectors").items()
        }
        if head_weights is not None:
            self.head_weights = {
                name: check_number(w, f"head_weights[{name!r}]", min_value=0.0)
                for name, w in _check_mapping(head_weights, "head_weights", "weights").items()
            }
        self._embeddings: dict[str, str] = {}
        modules = dict(model.named_modules())
        for name, path in _check_mapping(embeddings, "embeddings", "submodule paths").items():
            if not isinstance(path, str):
                raise TypeError(
                    f"embeddings[{name!r}]: expected the dotted name of a submodule (str), "
                    f"got {describe(path)}"
                )
            if path not in modules:
                close = difflib.get_close_matches(path, list(modules), n=3)
                hint = f" Did you mean {close}?" if close else ""
                raise ValueError(
                    f"embeddings[{name!r}]: no submodule named {path!r}.{hint} "
                    f"Available: {_available([n for n in modules if n])}"
                )
            self._embeddings[name] = path

    @staticmethod
    def _check_inputs(
        inputs: Sequence[str] | Mapping[str, int | str] | None,
    ) -> dict[str, int | str] | None:
        if inputs is None:
            return None
        if isinstance(inputs, Mapping):
            routes = dict(inputs)
        elif isinstance(inputs, Sequence) and not isinstance(inputs, str):
            routes = {name: i for i, name in enumerate(inputs)}
            if len(routes) != len(inputs):
                raise ValueError(f"inputs: modality names must be unique, got {list(inputs)}")
        else:
            raise TypeError(
                f"inputs: expected a list of modality names (positional order) or a dict "
                f"name -> position/keyword, got {describe(inputs)}"
            )
        for name, route in routes.items():
            if not isinstance(name, str):
                raise TypeError(f"inputs: modality names must be strings, got {describe(name)}")
            if isinstance(route, bool) or not isinstance(route, (int, str)):
                raise TypeError(
                    f"inputs[{name!r}]: expected a position (int) or keyword (str), "
                    f"got {describe(route)}"
                )
        positions = sorted(r for r in routes.values() if isinstance(r, int))
        if positions != list(range(len(positions))):
            raise ValueError(f"inputs: positions must be 0..{len(positions) - 1}, got {positions}")
        return routes

    @property
    def modalities(self) -> list[str] | None:
        """The modality names this wrapper routes, or ``None`` (passed through as keywords)."""
        return None if self._routes is None else list(self._routes)

    def forward(self, **inputs: Tensor) -> AVOutput:
        """Call the model with ``inputs`` routed as configured; see :func:`wrap`.

        The embedding hooks exist only while this call runs (they are removed afterwards, also
        when the model raises), so a direct call of ``self.model`` captures nothing.
        """
        calls: dict[str, list[Any]] = {path: [] for path in self._embeddings.values()}
        handles = [
            self.model.get_submodule(path).register_forward_hook(partial(_record, calls[path]))
            for path in calls
        ]
        try:
            raw = self._call_model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        if isinstance(raw, AVOutput) and self._logits is None and not self._heads:
            base = raw
        else:
            logits = (
                _default_logits(raw) if self._logits is None else _pick(raw, self._logits, "logits")
            )
            heads = {k: _pick(raw, s, f"heads[{k!r}]") for k, s in self._heads.items()}
            base = AVOutput(logits, heads=heads)
        captured = {
            name: _captured(name, path, calls[path]) for name, path in self._embeddings.items()
        }
        embeddings = {**base.embeddings, **captured}
        return AVOutput(base.logits, heads=dict(base.heads), embeddings=embeddings)

    def _call_model(self, inputs: Mapping[str, Tensor]) -> Any:
        if self._routes is None:
            return self.model(**inputs)
        unknown = sorted(set(inputs) - set(self._routes))
        missing = sorted(set(self._routes) - set(inputs))
        if unknown or missing:
            raise TypeError(
                f"inputs: expected modalities {sorted(self._routes)}, got {sorted(inputs)} "
                f"(unknown: {unknown}, missing: {missing})"
            )
        positional = sorted((r, n) for n, r in self._routes.items() if isinstance(r, int))
        args = [inputs[n] for _, n in positional]
        kwargs = {r: inputs[n] for n, r in self._routes.items() if isinstance(r, str)}
        return self.model(*args, **kwargs)


def wrap(
    model: nn.Module,
    inputs: Sequence[str] | Mapping[str, int | str] | None = None,
    *,
    logits: Selector | None = None,
    heads: Mapping[str, Selector] | None = None,
    embeddings: Mapping[str, str] | None = None,
    head_weights: Mapping[str, float] | None = None,
) -> WrappedModel:
    """Give any ``nn.Module`` the avrobust contract: ``model(**inputs) -> AVOutput``.

    Args:
        model: the third-party model.
        inputs: how modality names reach the model: a list of names in positional order
            (``["audio", "visual"]`` calls ``model(audio, visual)``), or a dict mapping each name to
            a position or keyword (``{"audio": 0, "visual": "video"}`` calls
            ``model(audio, video=visual)``). ``None`` passes ``model(**inputs)`` through.
        logits: where the logits are in the output: an index (an ``int`` into a tuple/list; a
            ``bool`` is refused), a key (dict) or attribute name, or a function of the output.
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
        TypeError: a selector that is not an ``int``, ``str`` or function (e.g. ``True``); an
            option that is not a dict; modality names that are not strings.
        ValueError: an embedding path that is not a submodule (the message lists them); at the
            call, a logits key or index that the output lacks (listing what exists), or an
            embedding submodule that did not run or ran more than once (naming it).

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
    return WrappedModel(model, inputs, logits, heads, embeddings, head_weights)
