"""What a model's forward may change, and how the attacks undo it or refuse it.

Nothing here is public beyond :func:`preserve_model_state` (exported by :mod:`avrobust`).

- :func:`preserve_model_state`: every submodule's train/eval flag, and every parameter and buffer
  as the module holds it: a tensor that forward rebinds (``self.calls = self.calls + 1`` on a
  buffer, a new ``nn.Parameter``) is put back, values that forward writes in place
  (``bias.mul_(2)`` under ``no_grad``, BatchNorm statistics) are copied back, and
  ``requires_grad`` and ``.grad`` are restored. A tensor forward left alone is not written to
  (its version stays, so a graph the caller built before the block still backpropagates).
  Blocks on one model from several threads run one after the other (each holds a lock per
  submodule), so none records another's eval mode or values as the model's own.
- :class:`InputWrites`: a model that writes in place into the inputs handed to it. The attack
  hands the model one copy of the caller's inputs per call (the caller's tensors are never
  reachable from forward); after every pass it compares each input's version counter and values
  (a write through ``.data`` bypasses the counter). A non-attacked input written to is restored
  from the caller's tensor before the next pass, so every pass sees the clean values; an
  attacked input written to is an error naming the model, as is autograd's "leaf Variable ...
  in-place operation" for one.
- :func:`call_on_copies`: a forward outside the attack loop (clean logits, checks) on copies of
  the inputs, so a forward writing into them reaches no caller's tensor.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

__all__ = ["InputWrites", "call_on_copies", "preserve_model_state"]


class _Held:
    """Every parameter and buffer slot of a model: the tensor object, its ``requires_grad`` flag
    and ``.grad``, and once per tensor a copy of its values and its version counter (lazy, not
    yet materialised parameters are skipped; so are the values of ``meta`` tensors and of
    inference tensors, which nothing outside ``torch.inference_mode`` can write to)."""

    def __init__(self, model: nn.Module) -> None:
        self.slots: list[tuple[dict[str, Any], str, Tensor, bool, Tensor | None]] = []
        self.copies: dict[int, tuple[Tensor, Tensor, int]] = {}
        for module in model.modules():
            for store in (module._parameters, module._buffers):
                for name, tensor in store.items():
                    if tensor is None or is_lazy(tensor):
                        continue
                    if id(tensor) not in self.copies and _writable(tensor):
                        copy = tensor.detach().clone()
                        self.copies[id(tensor)] = (tensor, copy, tensor._version)
                    grad = tensor.grad if isinstance(tensor, nn.Parameter) else None
                    self.slots.append((store, name, tensor, tensor.requires_grad, grad))

    def restore(self) -> None:
        for store, name, tensor, _, _ in self.slots:
            if store.get(name) is not tensor:  # rebound (or deleted) by forward: put it back
                store[name] = tensor
        with torch.no_grad():
            for tensor, copy in self._written():
                if tensor.shape != copy.shape or tensor.dtype != copy.dtype:
                    tensor.data = copy  # resized or recast in place: give the values back
                else:
                    tensor.copy_(copy)
        for _, _, tensor, requires_grad, grad in self.slots:
            if not isinstance(tensor, nn.Parameter):  # buffers hold no gradient (and reading
                continue  # .grad of a non-leaf one warns)
            if tensor.requires_grad != requires_grad:
                tensor.requires_grad_(requires_grad)
            if tensor.grad is not grad:
                tensor.grad = grad

    def _written(self) -> list[tuple[Tensor, Tensor]]:
        """The tensors whose values changed: every one whose version counter moved (an in-place
        op), and those whose values differ though it did not (writes through ``.data``, which
        bypass the counter)."""
        written, compare = [], []
        for tensor, copy, version in self.copies.values():
            same_form = tensor.shape == copy.shape and tensor.dtype == copy.dtype
            if tensor._version != version or not same_form:
                written.append((tensor, copy))
            else:
                compare.append((tensor, copy))
        return written + [pair for pair, differ in zip(compare, _differ(compare)) if differ]


def _writable(tensor: Tensor) -> bool:
    """Whether a tensor has values a forward could change (not ``meta``, not an inference
    tensor, which also has no version counter)."""
    return tensor.device.type != "meta" and not tensor.is_inference()


def _differ(pairs: Sequence[tuple[Tensor, Tensor]]) -> list[bool]:
    """Whether each tensor's values differ from its copy's (same shape and dtype), with one
    device sync per device."""
    result: list[bool] = []
    by_device: dict[torch.device, list[int]] = {}
    for i, (tensor, _) in enumerate(pairs):
        by_device.setdefault(tensor.device, []).append(i)
        result.append(False)
    for rows in by_device.values():
        flags = torch.stack([torch.ne(pairs[i][0].detach(), pairs[i][1]).any() for i in rows])
        for i, differ in zip(rows, flags.tolist()):
            result[i] = bool(differ)
    return result


@contextmanager
def preserve_model_state(model: nn.Module, mode: str = "eval") -> Iterator[nn.Module]:
    """Run a block with ``model`` in ``mode`` and leave it exactly as it was afterwards.

    Every submodule's ``training`` flag is recorded and restored one by one (so a model whose
    parts are in mixed modes keeps its mix). Every parameter and buffer is restored as the module
    holds it: a tensor the block rebinds (``self.calls = self.calls + 1`` on a registered buffer,
    a functional running mean, a new ``nn.Parameter``) is replaced by the original object, and
    values written in place (BatchNorm running statistics, ``bias.mul_(2)`` under ``no_grad``)
    are copied back, so even a forward in training mode leaves no trace. Parameters keep their
    ``requires_grad`` flag and ``.grad`` (the same tensor object). A tensor whose values did not
    change is not written to, so a graph built before the block can still be backpropagated.

    In-place writes are found by each tensor's version counter, and by comparing values (a write
    through ``.data`` bypasses the counter). Costs one copy of the model's parameters and buffers
    per block and one comparison with it at the end, on their device (for TalkNet's 15.8M
    values, about a fifth of a CPU forward of one 5-frame clip), and one device sync.

    Blocks on the same model (or models sharing submodules) entered from several threads run one
    after the other: the block holds a lock per submodule (re-entrant, so a block inside a block
    of the same thread is fine).

    Args:
        model: the model.
        mode: ``"eval"`` puts the whole model in eval mode for the block; ``"current"`` leaves
            the flags as they are (dropout stays active in a model left in training mode).
    """
    with _exclusive(model):
        flags = [(module, module.training) for module in model.modules()]
        held = _Held(model)
        try:
            if mode == "eval":
                model.eval()
            yield model
        finally:
            held.restore()
            for module, flag in flags:
                module.training = flag


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _exclusive(model: nn.Module) -> Iterator[None]:
    """Hold every submodule's lock, taken in one global order (by ``id``), so two threads whose
    models share submodules never wait on each other in a cycle."""
    with _LOCKS_GUARD:
        modules = sorted(model.modules(), key=id)
        locks = [_LOCKS.setdefault(module, threading.RLock()) for module in modules]
    held: list[threading.RLock] = []
    try:
        for lock in locks:
            lock.acquire()
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()


def call_on_copies(model: nn.Module, inputs: Mapping[str, Tensor]) -> Any:
    """``model(**inputs)`` on one copy of each input: a forward that writes in place into its
    inputs reaches none of the caller's tensors (for forwards outside the attack loop, where
    nothing needs the written values)."""
    return model(**{name: x.clone() for name, x in inputs.items()})


_LEAF_WRITE = "leaf Variable that requires grad is being used in an in-place operation"


class InputWrites:
    """Catch a model writing in place into the inputs the attack hands it (see the module doc).

    Args:
        model: the attacked model (named in the error).
        originals: the caller's inputs ``{modality: (B, ...)}``, never handed to the model.
        attacked: the attacked modalities.
    """

    def __init__(
        self, model: nn.Module, originals: Mapping[str, Tensor], attacked: Sequence[str]
    ) -> None:
        self.model, self.originals, self.attacked = model, originals, tuple(attacked)

    @staticmethod
    def before(inputs: Mapping[str, Tensor]) -> dict[str, tuple[int, Tensor]]:
        """Each input's version counter and a copy of its values, to compare after a pass (a
        write through ``.data`` bypasses the counter)."""
        return {n: (x._version, x.detach().clone()) for n, x in inputs.items()}

    def check(
        self,
        inputs: Mapping[str, Tensor],
        before: Mapping[str, tuple[int, Tensor]],
        *,
        restore: bool = True,
    ) -> None:
        """After a pass (forward and backward): restore every non-attacked input written to
        (``restore=False``: inputs that are copies made for this pass alone need no restoring).

        Raises:
            ValueError: an attacked input was written to (naming the model and the input).
        """
        for name, x in inputs.items():
            version, values = before[name]
            if x._version == version and torch.equal(x.detach(), values):
                continue
            if name in self.attacked:
                raise ValueError(self.message(f"the attacked input {name!r}"))
            if not restore:
                continue
            original, repeats = self.originals[name], x.shape[0] // self.originals[name].shape[0]
            with torch.no_grad():  # restarts stack repeats of the batch one after the other
                x.copy_(original.repeat((repeats,) + (1,) * (original.ndim - 1)))

    def translate(self, error: RuntimeError) -> Exception:
        """Autograd's error for an attacked input written in place, as this class's error."""
        if _LEAF_WRITE not in str(error):
            return error
        if len(self.attacked) == 1:
            return ValueError(self.message(f"the attacked input {self.attacked[0]!r}"))
        return ValueError(self.message(f"one of the attacked inputs {list(self.attacked)}"))

    def message(self, which: str) -> str:
        name = type(self.model).__name__
        return (
            f"model ({name}): its forward writes in place into {which} "
            "(e.g. `visual /= 255` or `x.clamp_(0, 1)`), but the attack keeps that tensor as "
            "its candidate (and a gradient attack differentiates with respect to it); write "
            "the operation out of "
            "place in forward (`visual = visual / 255`). Inputs that are not attacked may be "
            "written to: each pass gets the clean values again"
        )
