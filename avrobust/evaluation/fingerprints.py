"""Fingerprints that tell whether a results file belongs to a run: of clips, models, callables.

* :func:`clip_digests` and :func:`data_digest` fingerprint clips by content (however they are
  batched or loaded);
* :func:`model_fingerprint` fingerprints a model's weights and buffers, and its modules' plain
  attributes (a temperature, :func:`avrobust.wrap`'s settings);
* :func:`callable_identity` fingerprints a function by its code and captured values (tensors by
  their bytes);
* :func:`settings_repr` gives a budget's or rule's ``repr`` with the bytes of its tensors.

A fingerprint is 16 hex digits, then, for what earlier versions did not cover (the plain
attributes of a model, tensors captured by a callable), ``"+"`` and 16 more: what those versions
wrote is the part before ``"+"``, and a model or callable without such things keeps its
fingerprint of before.
"""

from __future__ import annotations

import dis
import enum
import functools
import hashlib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "callable_identity",
    "clip_digests",
    "data_digest",
    "model_fingerprint",
    "settings_repr",
]


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
_MAX_DEPTH = 8  # how deep captured or nested values are followed (a cycle stops there too)


class _Extra:
    """The digest of what earlier fingerprints did not cover; ``found``: anything fed."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.found = False

    def update(self, data: bytes) -> None:
        self.found = True
        self.digest.update(data)

    def tensor(self, value: Tensor) -> None:
        self.update(f"tensor|{value.dtype}|{tuple(value.shape)}|".encode() + _tensor_bytes(value))

    def array(self, value: np.ndarray) -> None:
        data = value.tobytes() if value.dtype != object else repr(value.tolist()).encode()
        self.update(f"array|{value.dtype}|{value.shape}|".encode() + data)

    def suffix(self) -> str:
        return f"+{self.digest.hexdigest()[:16]}" if self.found else ""


def _tensor_bytes(value: Tensor) -> bytes:
    data = value.detach()
    if data.device.type == "meta":  # no values to read
        return b"meta"
    if data.layout != torch.strided:
        data = data.to_dense()
    data = data.cpu().contiguous().reshape(-1)
    if not data.numel():
        return b""
    try:
        return data.view(torch.uint8).numpy().tobytes()  # type: ignore[no-any-return]
    except (RuntimeError, TypeError):  # a quantized tensor, say: its values as numbers
        return repr(data.tolist()).encode()


# ----------------------------------------------------------------------------- callables


def callable_identity(fn: Any) -> str | None:
    """A fingerprint of what a callable computes: its code (bytecode, constants and the names
    it uses, nested functions included), default arguments and captured (closure) values; for a
    bound method or a callable object, also its object's type and attributes; for a
    ``functools.partial``, its arguments. Captured tensors and arrays count by their bytes (all
    of them, not ``repr``'s rounded summary) and captured modules by their weights. Two lambdas of
    different bodies differ, the same code with the same captured values (another object) does
    not. Not covered: the values of global variables it reads. The bytecode differs between
    Python versions, so a function fingerprinted under one counts as changed under another.
    ``None`` and strings give ``None``."""
    if fn is None or isinstance(fn, str):
        return None
    digest, extra = hashlib.sha256(), _Extra()
    _feed(digest, fn, 0, extra)
    return digest.hexdigest()[:16] + extra.suffix()


def _feed(digest: Any, fn: Any, depth: int, extra: _Extra) -> None:
    if depth > _MAX_DEPTH:  # a deep or cyclic chain of captured functions: stop at its name
        digest.update(repr(type(fn)).encode())
        return
    if isinstance(fn, functools.partial):
        _feed(digest, fn.func, depth + 1, extra)
        _feed_value(digest, (fn.args, sorted(fn.keywords.items())), depth, extra)
        return
    if isinstance(fn, types.MethodType):
        digest.update(type(fn.__self__).__qualname__.encode())
        _feed_value(digest, getattr(fn.__self__, "__dict__", None), depth, extra)
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):  # a callable object: its class's __call__, its state
        digest.update(type(fn).__qualname__.encode())
        digest.update(_ADDRESS.sub("", repr(fn)).encode())  # built-ins: their name
        call = getattr(type(fn).__call__, "__code__", None)
        if isinstance(call, types.CodeType):
            _feed_code(digest, call)
        _feed_value(digest, getattr(fn, "__dict__", None), depth, extra)
        return
    _feed_code(digest, code)
    _feed_value(digest, (fn.__defaults__, fn.__kwdefaults__), depth, extra)
    for cell in fn.__closure__ or ():
        try:
            _feed_value(digest, cell.cell_contents, depth, extra)
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


def _feed_value(digest: Any, value: Any, depth: int, extra: _Extra) -> None:
    if callable(value) and not isinstance(value, (type, torch.nn.Module)):
        _feed(digest, value, depth + 1, extra)
        return
    digest.update(_ADDRESS.sub("", repr(value)).encode())  # what earlier versions fed
    _collect(extra, value, depth, set())


def _collect(extra: _Extra, value: Any, depth: int, seen: set[int]) -> None:
    """Feed ``extra`` the bytes of the tensors and arrays in ``value`` (in containers and
    objects' attributes too) and the weights of its modules: what ``repr`` leaves out.
    ``seen``: the containers being walked (a cycle stops there)."""
    if isinstance(value, Tensor):
        extra.tensor(value)
    elif isinstance(value, np.ndarray):
        extra.array(value)
    elif isinstance(value, nn.Module):
        extra.update(b"module|" + _weights_digest(value).encode())
    elif depth > _MAX_DEPTH or id(value) in seen or isinstance(value, (str, bytes, type)):
        return
    else:
        seen.add(id(value))
        if isinstance(value, Mapping):
            for item in value.values():
                _collect(extra, item, depth + 1, seen)
        elif isinstance(value, (list, tuple)):
            for item in value:
                _collect(extra, item, depth + 1, seen)
        elif isinstance(value, (set, frozenset)):  # their order varies between processes
            parts = [_Extra() for _ in value]
            for part, item in zip(parts, value):
                _collect(part, item, depth + 1, seen)
            found = sorted(p.digest.hexdigest() for p in parts if p.found)
            if found:
                extra.update("".join(found).encode())
        elif callable(value):  # a function inside a container: its own captured values
            _feed(hashlib.sha256(), value, depth + 1, extra)
        elif isinstance(getattr(value, "__dict__", None), dict):
            _collect(extra, vars(value), depth + 1, seen)
        seen.discard(id(value))


# ----------------------------------------------------------------------------- models


def model_fingerprint(model: nn.Module | None) -> str | None:
    """A fingerprint of what a model computes beyond its inputs: a SHA-256 of its state dict
    (names, shapes, dtypes, bytes), then, if any of its modules has plain attributes, ``"+"``
    and a SHA-256 of them: the same weights with another temperature, or
    :func:`avrobust.wrap`'s ``output=``, ``logits=`` or transforms' options, give another
    fingerprint. ``None`` for no model.

    A plain attribute is an entry of a module's ``__dict__`` that is not a parameter, buffer or
    submodule (those are in the state dict or walked as modules): numbers, strings, tuples,
    dicts, tensors (by their bytes), functions (by :func:`callable_identity`). Not counted: the
    train/eval flag and hooks (``nn.Module``'s own entries; evaluate runs the model in eval mode
    and restores it), and the attributes PyTorch's, torchaudio's and torchvision's own layer
    classes set (``stride``, BatchNorm's ``eps``: they vary between versions of those libraries,
    so a results file resumes under another one; a setting you add to such a layer counts).
    """
    if model is None:
        return None
    extra = _Extra()
    for name, module in model.named_modules():
        attributes = _plain_attributes(module)
        if attributes:
            extra.update(f"module|{name}|{type(module).__qualname__}|".encode())
        for key, value in attributes:
            extra.update(f"{key}=".encode())
            _feed_plain(extra, value, 0, set())
    return _weights_digest(model) + extra.suffix()


def _weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(str(tuple(tensor.shape)).encode() + str(data.dtype).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


_LIBRARIES = ("torch", "torchaudio", "torchvision")  # their layers count by their weights
#: attributes a class changes as it runs, that do not change its outputs: ``(module, class)``
_TRANSIENT = {("avrobust.adapters.wrapped", "WrappedModel"): frozenset({"_warned"})}


def _plain_attributes(module: nn.Module) -> list[tuple[str, Any]]:
    cls: type = type(module)
    skipped = _not_plain(cls)
    return sorted(
        ((k, v) for k, v in vars(module).items() if k not in skipped), key=lambda kv: kv[0]
    )


@functools.cache
def _not_plain(cls: type) -> frozenset[str]:
    """The ``__dict__`` entries of a module of class ``cls`` that do not count: those of every
    ``nn.Module``, those the code of the libraries' classes in its MRO sets, transient ones."""
    names = set(vars(nn.Module()))
    for klass in cls.__mro__:
        names |= _TRANSIENT.get((klass.__module__, klass.__qualname__), frozenset())
        names |= _library_names(klass)
    return frozenset(names)


@functools.cache
def _library_names(klass: type) -> frozenset[str]:
    """The attribute names the methods of ``klass`` assign, if a library defines it."""
    if klass.__module__.split(".")[0] not in _LIBRARIES:
        return frozenset()
    return frozenset(name for member in vars(klass).values() for name in _stored_names(member))


def _stored_names(member: Any) -> set[str]:
    """The attribute names that the code of a class member assigns (``self.x = ...``)."""
    if isinstance(member, property):
        functions = [member.fget, member.fset, member.fdel]
    else:
        functions = [getattr(member, "__func__", member)]
    names: set[str] = set()
    found = (getattr(f, "__code__", None) for f in functions)
    codes = [code for code in found if isinstance(code, types.CodeType)]
    while codes:
        code = codes.pop()
        names |= {str(i.argval) for i in dis.get_instructions(code) if i.opname == "STORE_ATTR"}
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return names


def _feed_plain(extra: _Extra, value: Any, depth: int, seen: set[int]) -> None:
    """Feed ``extra`` a plain attribute's value: its type and content, whatever its ``repr``."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        extra.update(f"{type(value).__name__}:{value!r}|".encode())
    elif isinstance(value, Tensor):
        extra.tensor(value)
    elif isinstance(value, np.ndarray):
        extra.array(value)
    elif isinstance(value, (torch.dtype, torch.device, enum.Enum)):
        extra.update(f"{value!r}|".encode())
    elif isinstance(value, (type, nn.Module)):  # a module is walked as one where registered
        kind = value if isinstance(value, type) else type(value)
        extra.update(f"{kind.__module__}.{kind.__qualname__}|".encode())
    elif depth > _MAX_DEPTH or id(value) in seen:
        extra.update(f"{type(value).__qualname__}:...|".encode())
    else:
        seen.add(id(value))  # the containers being walked: a cycle stops there
        _feed_container(extra, value, depth, seen)
        seen.discard(id(value))


def _feed_container(extra: _Extra, value: Any, depth: int, seen: set[int]) -> None:
    extra.update(f"{type(value).__qualname__}(".encode())
    if isinstance(value, Mapping):
        for key, item in value.items():
            _feed_plain(extra, key, depth + 1, seen)
            _feed_plain(extra, item, depth + 1, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _feed_plain(extra, item, depth + 1, seen)
    elif isinstance(value, (set, frozenset)):  # their order varies between processes
        parts = []
        for item in value:
            part = _Extra()
            _feed_plain(part, item, depth + 1, seen)
            parts.append(part.digest.hexdigest())
        extra.update("".join(sorted(parts)).encode())
    elif callable(value):
        extra.update(_function_identity(value).encode())
    elif isinstance(getattr(value, "__dict__", None), dict):
        _feed_container(extra, vars(value), depth + 1, seen)
    else:
        extra.update(_ADDRESS.sub("", repr(value)).encode())
    extra.update(b")")


def _function_identity(fn: Any) -> str:
    """A function kept as a module's attribute: a library's by its name, others by their code
    and captured values (a method of a module by its code alone: the module counts itself)."""
    if isinstance(fn, types.MethodType) and isinstance(fn.__self__, nn.Module):
        fn = fn.__func__
    owner = str(getattr(fn, "__module__", None) or "")
    if owner.split(".")[0] in (*_LIBRARIES, "numpy", "math", "builtins", "operator"):
        return f"{owner}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    return str(callable_identity(fn))


# ----------------------------------------------------------------------------- settings


def settings_repr(value: Any) -> str:
    """``repr(value)`` of a budget or rule, followed, if its attributes hold tensors (a
    per-dimension ``eps``), by ``" values=<16 hex digits>"``, a SHA-256 of their bytes: ``repr``
    shows a tensor's shape, or its values rounded and, past 1,000 elements, summarised."""
    extra = _Extra()
    if isinstance(getattr(value, "__dict__", None), dict):
        _collect(extra, vars(value), 0, set())
    return repr(value) + (f" values={extra.digest.hexdigest()[:16]}" if extra.found else "")
