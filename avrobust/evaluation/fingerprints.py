"""Fingerprints that tell whether a results file belongs to a run: of clips, models, callables.

* :func:`clip_digests` and :func:`data_digest` fingerprint clips by content (however they are
  batched or loaded);
* :func:`model_fingerprint` fingerprints a model's weights and buffers;
* :func:`callable_identity` fingerprints a function by its code and captured values.
"""

from __future__ import annotations

import functools
import hashlib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["callable_identity", "clip_digests", "data_digest", "model_fingerprint"]


def clip_digests(inputs: Mapping[str, Tensor], labels: Tensor) -> list[bytes]:
    """One digest per clip of a batch: its tensors' names, dtypes, shapes and bytes, labels too
    (the same clip gives the same digest however it is batched or loaded)."""
    parts = [(k, inputs[k]) for k in sorted(inputs)] + [("labels", labels)]
    parts = [(k, v.detach().cpu()) for k, v in parts]
    out = []
    for row in range(int(labels.shape[0])):
        digest = hashlib.sha256()
        for name, tensor in parts:
            x = tensor[row].contiguous().reshape(-1)
            digest.update(f"{name}|{x.dtype}|{tuple(tensor.shape[1:])}|".encode())
            digest.update(x.view(torch.uint8).numpy().tobytes() if x.numel() else b"")
        out.append(digest.digest()[:16])
    return out


def data_digest(digests: Sequence[bytes]) -> str:
    """The fingerprint of a sequence of clips (from :func:`clip_digests`, in order)."""
    return hashlib.sha256(b"".join(digests)).hexdigest()[:16]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def callable_identity(fn: Any) -> str | None:
    """A fingerprint of what a callable computes: its code (bytecode, constants and the names
    it uses, nested functions included), default arguments and captured (closure) values; for a
    bound method or a callable object, also its object's type and attributes; for a
    ``functools.partial``, its arguments. Two lambdas of different bodies differ, the same code
    with the same captured values (another object) does not. Not covered: the values of global
    variables it reads. The bytecode differs between Python versions, so a function fingerprinted
    under one counts as changed under another. ``None`` and strings give ``None``."""
    if fn is None or isinstance(fn, str):
        return None
    digest = hashlib.sha256()
    _feed(digest, fn, depth=0)
    return digest.hexdigest()[:16]


def _feed(digest: Any, fn: Any, depth: int) -> None:
    if depth > 8:  # a deep or cyclic chain of captured functions: stop at its name
        digest.update(repr(type(fn)).encode())
        return
    if isinstance(fn, functools.partial):
        _feed(digest, fn.func, depth + 1)
        _feed_value(digest, (fn.args, sorted(fn.keywords.items())), depth)
        return
    if isinstance(fn, types.MethodType):
        digest.update(type(fn.__self__).__qualname__.encode())
        _feed_value(digest, getattr(fn.__self__, "__dict__", None), depth)
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):  # a callable object: its class's __call__, its state
        digest.update(type(fn).__qualname__.encode())
        digest.update(_ADDRESS.sub("", repr(fn)).encode())  # built-ins: their name
        call = getattr(type(fn).__call__, "__code__", None)
        if isinstance(call, types.CodeType):
            _feed_code(digest, call)
        _feed_value(digest, getattr(fn, "__dict__", None), depth)
        return
    _feed_code(digest, code)
    _feed_value(digest, (fn.__defaults__, fn.__kwdefaults__), depth)
    for cell in fn.__closure__ or ():
        try:
            _feed_value(digest, cell.cell_contents, depth)
        except ValueError:  # an empty cell
            digest.update(b"<empty>")


def _feed_code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(digest, const)
        else:
            digest.update(_ADDRESS.sub("", repr(const)).encode())


def _feed_value(digest: Any, value: Any, depth: int) -> None:
    if callable(value) and not isinstance(value, (type, torch.nn.Module)):
        _feed(digest, value, depth + 1)
        return
    digest.update(_ADDRESS.sub("", repr(value)).encode())


def model_fingerprint(model: nn.Module | None) -> str | None:
    """The first 16 hex digits of a SHA-256 of the model's state dict (names, shapes, dtypes,
    bytes): the same weights give the same fingerprint. ``None`` for no model."""
    if model is None:
        return None
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(str(tuple(tensor.shape)).encode() + str(data.dtype).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]
