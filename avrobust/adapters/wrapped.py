"""``WrappedModel``: any ``nn.Module`` seen through the contract ``model(**inputs) -> AVOutput``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from torch import Tensor, nn

from .._checks import check_number, describe, raised_in
from .._types import AVOutput
from .chain import Routes, call_routed, chain_modules, check_forward, check_names, run_chain
from .outputs import (
    as_logits,
    check_output,
    looks_like_probabilities,
    warn_probabilities,
    warn_unnormalised,
)
from .pipeline import check_transform
from .selectors import available, check_selector, default_logits, pick, selector_modules

__all__ = ["WrappedModel", "as_avoutput"]


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
        TypeError: any other output (the message points to :func:`avrobust.wrap`), or an
            ``AVOutput`` whose logits, heads or embeddings are not tensors (or whose heads or
            embeddings are not dicts).
    """
    if isinstance(output, AVOutput):
        if not isinstance(output.logits, Tensor):
            raise TypeError(
                f"model output: AVOutput.logits: expected a tensor, got {describe(output.logits)}"
            )
        for field in ("heads", "embeddings"):
            if not isinstance(getattr(output, field), Mapping):
                raise TypeError(
                    f"model output: AVOutput.{field}: expected a dict of names to tensors, "
                    f"got {describe(getattr(output, field))}"
                )
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


def _check_inputs(inputs: Sequence[str] | Mapping[str, int | str] | None) -> Routes:
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


def _check_transforms(transforms: Any, names: Sequence[str] | None) -> dict[str, Any]:
    checked = _check_mapping(transforms, "transforms", "input transforms (nn.Modules)")
    for name, fn in checked.items():
        checked[name] = check_transform(fn, f"transforms[{name!r}]")
        if names is not None and name not in names:
            raise ValueError(f"transforms: a transform for {name!r}, but the inputs are {names}")
    return checked


def _check_embeddings(model: nn.Module, embeddings: Any) -> dict[str, str]:
    checked: dict[str, str] = {}
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
                f"Available: {available([n for n in modules if n])}"
            )
        checked[name] = path
    return checked


class WrappedModel(nn.Module):
    """A third-party model seen through the avrobust contract (built by :func:`avrobust.wrap`).

    Call it as ``wrapped(**inputs)`` with one tensor per modality name; it returns
    :class:`avrobust.AVOutput`. The wrapped module is ``wrapped.model`` (so its state-dict keys
    gain a ``model.`` prefix); the transforms are ``wrapped.transforms`` (keyed by modality),
    and the ``nn.Module`` parts of ``forward=``, ``logits=`` and ``heads=`` that are not
    already inside the model are ``wrapped.attached``, so ``eval()``, ``train()`` and ``.to()``
    reach them all. Embeddings are captured by forward hooks on named submodules, registered
    for the duration of each call and removed after it.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Sequence[str] | Mapping[str, int | str] | None = None,
        logits: Any = None,
        heads: Mapping[str, Any] | None = None,
        embeddings: Mapping[str, str] | None = None,
        head_weights: Mapping[str, float] | None = None,
        *,
        forward: Any = None,
        transforms: Mapping[str, Any] | None = None,
        output: str = "logits",
        guard: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
        self.model = model
        self._routes = _check_inputs(inputs)
        names = None if self._routes is None else list(self._routes)
        self._forward = check_forward(model, forward, names)
        self._output, self._guard = check_output(output, guard)
        self._warned = False
        # plain dicts, so nn.Module does not register the selectors under private names
        self._selectors: dict[str, Any] = {
            "logits": None if logits is None else check_selector(logits, "logits"),
            "heads": {
                name: check_selector(s, f"heads[{name!r}]")
                for name, s in _check_mapping(heads, "heads", "selectors").items()
            },
        }
        if head_weights is not None:
            self.head_weights = {
                name: check_number(w, f"head_weights[{name!r}]", min_value=0.0)
                for name, w in _check_mapping(head_weights, "head_weights", "weights").items()
            }
        self._embeddings = _check_embeddings(model, embeddings)
        self._transforms = _check_transforms(transforms, names)
        self.transforms = nn.ModuleDict(
            {k: t for k, t in self._transforms.items() if isinstance(t, nn.Module)}
        )
        parts = chain_modules(self._forward) + selector_modules(self._selectors["logits"])
        for selector in self._selectors["heads"].values():
            parts += selector_modules(selector)
        inside = {id(m) for m in model.modules()}
        unique = {id(m): m for m in parts if id(m) not in inside}
        self.attached = nn.ModuleList(unique.values())

    @property
    def modalities(self) -> list[str] | None:
        """The modality names this wrapper routes, or ``None`` (passed through as keywords)."""
        return None if self._routes is None else list(self._routes)

    def forward(self, **inputs: Tensor) -> AVOutput:
        """Transform the inputs, call the model as configured, read its output; see
        :func:`avrobust.wrap`.

        The embedding hooks exist only while this call runs (they are removed afterwards, also
        when the model raises), so a direct call of ``self.model`` captures nothing.
        """
        calls: dict[str, list[Any]] = {path: [] for path in self._embeddings.values()}
        handles = [
            self.model.get_submodule(path).register_forward_hook(partial(_record, calls[path]))
            for path in calls
        ]
        try:
            raw = self._call_model(self._transformed(inputs))
        finally:
            for handle in handles:
                handle.remove()
        base = self._read(raw, inputs)
        captured = {
            name: _captured(name, path, calls[path]) for name, path in self._embeddings.items()
        }
        embeddings = {**base.embeddings, **captured}
        return AVOutput(base.logits, heads=dict(base.heads), embeddings=embeddings)

    def _transformed(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        missing = sorted(set(self._transforms) - set(inputs))
        if missing:
            raise TypeError(
                f"transforms: there are transforms for {missing}, but the inputs have only "
                f"{sorted(inputs)}"
            )
        out = dict(inputs)
        for name, transform in self._transforms.items():
            with raised_in(f"transforms[{name!r}], given to avrobust.wrap"):
                out[name] = transform(inputs[name])
        return out

    def _read(self, raw: Any, inputs: Mapping[str, Tensor]) -> AVOutput:
        logits_selector, head_selectors = self._selectors["logits"], self._selectors["heads"]
        if isinstance(raw, AVOutput) and logits_selector is None and not head_selectors:
            base = raw
        else:
            logits = (
                default_logits(raw)
                if logits_selector is None
                else pick(raw, logits_selector, "logits", inputs)
            )
            heads = {k: pick(raw, s, f"heads[{k!r}]", inputs) for k, s in head_selectors.items()}
            base = AVOutput(logits, heads=heads)
        if self._output == "logits":
            if not self._warned and looks_like_probabilities(base.logits):
                self._warned = True
                warn_probabilities(base.logits, stacklevel=6)
            return base
        if self._output == "probabilities" and not self._warned:
            self._warned = True  # the first call's output is checked
            warn_unnormalised(base.logits, stacklevel=6)
        return AVOutput(
            as_logits(base.logits, self._output, self._guard, "model output logits"),
            heads={
                k: as_logits(h, self._output, self._guard, f"model output heads[{k!r}]")
                for k, h in base.heads.items()
            },
            embeddings=base.embeddings,
        )

    def _call_model(self, inputs: Mapping[str, Tensor]) -> Any:
        if self._forward is None:
            return call_routed(self.model, self._routes, inputs)
        if isinstance(self._forward, tuple):
            return run_chain(self.model, self._forward, self._routes, inputs)
        check_names(self._routes, inputs)
        names = ", ".join(f"{n}=..." for n in inputs)
        with raised_in(f"the forward= function given to avrobust.wrap, as forward(model, {names})"):
            return self._forward(self.model, **inputs)
