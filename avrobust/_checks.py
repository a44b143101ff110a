"""Input validation at the library's boundary.

Every message names the argument, says what was expected and shows what came, e.g.
``budgets["visual"]: eps must be a finite number >= 0, got -0.5``. ``ValueError`` for bad
values, ``TypeError`` for wrong types. Other modules call these helpers instead of writing their
own checks, so a message reads the same wherever it is raised.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import torch
from torch import Tensor

__all__ = [
    "check_bounds",
    "check_choice",
    "check_finite_tensor",
    "check_fraction",
    "check_int",
    "check_number",
    "check_tensor",
    "check_tensor_dict",
    "describe",
    "known_options",
    "raised_in",
]


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages (type, and shape for tensors)."""
    if isinstance(value, Tensor):
        return f"Tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    if isinstance(value, Mapping):
        return f"{type(value).__name__} with keys {[str(k) for k in value]}"
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(type(v).__name__ for v in value[:5])
        return f"{type(value).__name__} of {len(value)} elements ({kinds}{', ...' if len(value) > 5 else ''})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_number(
    value: Any,
    name: str,
    *,
    min_value: float | None = None,
    strict: bool = False,
    allow_inf: bool = False,
) -> float:
    """Check that ``value`` is a real number (finite unless ``allow_inf``) above ``min_value``.

    Args:
        value: the value to check.
        name: the argument's name as the user wrote it, e.g. ``'budgets["audio"].eps'``.
        min_value: lower limit, inclusive unless ``strict``.
        strict: require ``value > min_value`` instead of ``>=``.
        allow_inf: accept ``+inf``.

    Returns:
        ``value`` as a Python float.

    Real numbers of other types (NumPy scalars such as ``np.float32(0.5)``, fractions) and
    one-element tensors are accepted and returned as a Python float.

    Raises:
        TypeError: not a real number (``bool`` and NumPy's ``bool_`` are refused too).
        ValueError: NaN, infinite (unless allowed) or below the limit.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name}: expected a real number, got {describe(value)}")
    value = float(value)
    finite = "" if allow_inf else "finite "
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        limit = "" if min_value is None else f" {'>' if strict else '>='} {min_value:g}"
        raise ValueError(f"{name}: must be a {finite}number{limit}, got {value}")
    if min_value is not None and (value <= min_value if strict else value < min_value):
        op = ">" if strict else ">="
        raise ValueError(f"{name}: must be a {finite}number {op} {min_value:g}, got {value:g}")
    return value


def check_fraction(value: Any, name: str) -> float:
    """Check that ``value`` is a real number in [0, 1] (a fraction, a probability, a ratio).

    Returns:
        ``value`` as a Python float.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, or outside [0, 1].
    """
    number = check_number(value, name, min_value=0.0)
    if number > 1:
        raise ValueError(f"{name}: must be a number in [0, 1], got {number:g}")
    return number


def check_int(value: Any, name: str, *, min_value: int | None = None) -> int:
    """Check that ``value`` is an integer (not ``bool``) and at least ``min_value``.

    Integer-like values (NumPy integers, 0-d integer tensors: anything with ``__index__``) are
    accepted and returned as a Python ``int``.

    Raises:
        TypeError: not an integer.
        ValueError: below ``min_value``.
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)  # a float, a string, a tensor of floats or of many: no
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {describe(value)}") from None
    if min_value is not None and value < min_value:
        raise ValueError(f"{name}: must be >= {min_value}, got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not 0/1, not ``np.bool_``), else raise
    ``TypeError`` naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool (True or False), got {describe(value)}")
    return value


def check_generator(value: Any, name: str = "generator") -> torch.Generator | None:
    """Return ``value`` if it is a ``torch.Generator`` or ``None``, else raise ``TypeError``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name}: expected a torch.Generator (CPU) or None, got {describe(value)}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of the strings in ``choices`` (case-insensitive).

    Returns:
        The lower-cased choice.

    Raises:
        TypeError: not a string.
        ValueError: not one of ``choices``; the message lists them.
    """
    options = sorted(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {options}, got {describe(value)}")
    lowered = value.lower()
    if lowered not in options:
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    return lowered


def check_bounds(bounds: Any, name: str) -> tuple[float, float] | None:
    """Check a valid-range pair ``(low, high)`` with ``low < high``; ``None`` means unbounded.

    Raises:
        TypeError: not a pair of numbers.
        ValueError: NaN, or ``low >= high``.
    """
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"{name}: expected a pair (low, high) or None, got {describe(bounds)}")
    low = check_number(bounds[0], f"{name}[0]", allow_inf=True)
    high = check_number(bounds[1], f"{name}[1]", allow_inf=True)
    if not low < high:
        raise ValueError(f"{name}: expected low < high, got low={low:g}, high={high:g}")
    return (low, high)


def check_tensor(
    value: Any,
    name: str,
    *,
    ndims: Iterable[int] | None = None,
    floating: bool = False,
) -> Tensor:
    """Check that ``value`` is a tensor with an allowed number of dimensions (and float dtype).

    Raises:
        TypeError: not a tensor, or not floating point when ``floating``.
        ValueError: number of dimensions not in ``ndims``.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    if floating and not value.is_floating_point():
        raise TypeError(
            f"{name}: expected a floating-point tensor (float16/32/64), got dtype {value.dtype}"
        )
    if ndims is not None:
        allowed = tuple(ndims)
        if value.ndim not in allowed:
            raise ValueError(
                f"{name}: expected a tensor with {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {tuple(value.shape)}"
            )
    return value


def check_finite_tensor(value: Tensor, name: str) -> Tensor:
    """Raise ``ValueError`` if ``value`` holds NaN or Inf (says how many)."""
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        raise ValueError(
            f"{name}: expected finite values, got {int(bad.sum())} NaN/Inf entries "
            f"in a tensor of shape {tuple(value.shape)}"
        )
    return value


def check_labels_batch(labels: Any, batch: int) -> Tensor:
    """Return ``labels`` if it is a tensor whose first dimension is ``batch`` (the inputs')."""
    if not isinstance(labels, Tensor):
        raise TypeError(
            f"labels: expected a torch.Tensor of class indices, got {describe(labels)}; "
            "pass torch.as_tensor(labels) (on the inputs' device)"
        )
    if labels.ndim == 0 or labels.shape[0] != batch:
        raise ValueError(
            f"labels: expected a batch dimension of {batch} (as the inputs), "
            f"got shape {tuple(labels.shape)}"
        )
    return labels


def check_tensor_dict(value: Any, name: str) -> dict[str, Tensor]:
    """Check a non-empty ``dict[str, Tensor]`` whose tensors share the batch size (dim 0).

    Raises:
        TypeError: not a mapping of string keys to tensors.
        ValueError: empty, a 0-d tensor, a tensor on the ``meta`` device (no data), or
            different batch sizes (all sizes are listed).
    """
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name}: expected a dict mapping modality names to tensors, got {describe(value)}"
        )
    if not value:
        raise ValueError(f"{name}: expected at least one modality, got an empty dict")
    out: dict[str, Tensor] = {}
    for key, tensor in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{name}: modality names must be strings, got {key!r}")
        check_tensor(tensor, f"{name}[{key!r}]")
        if tensor.ndim == 0:
            raise ValueError(f"{name}[{key!r}]: expected a batch dimension, got a 0-d tensor")
        if tensor.device.type == "meta":
            raise ValueError(
                f"{name}[{key!r}]: expected a tensor with data, got one on the 'meta' device "
                f"(shape {tuple(tensor.shape)}: a shape without values, e.g. made under "
                "torch.device('meta') or before its data was loaded); pass the tensor with its "
                "values, on the model's device ('cpu', 'cuda')"
            )
        out[key] = tensor
    sizes = {key: int(t.shape[0]) for key, t in out.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{name}: all modalities must share the batch size (dim 0), got {sizes}")
    return out


_D = TypeVar("_D")


def replace_fields(obj: _D, changes: Mapping[str, Any]) -> _D:
    """``dataclasses.replace`` that names the unknown fields and lists the known ones.

    Raises:
        TypeError: a name in ``changes`` is not a field of ``obj``'s dataclass.
    """
    known = {f.name for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"{type(obj).__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


@contextmanager
def raised_in(where: str) -> Iterator[None]:
    """Add a note naming ``where`` (a user's function, model or option) to an ``Exception``
    raised inside the block, so a raw error from user code says which part raised it. The
    error keeps its type and message (notes show under the traceback, Python >= 3.11)."""
    try:
        yield
    except Exception as error:
        note = f"(raised in {where})"
        if hasattr(error, "add_note"):
            error.add_note(note)
        else:  # Python 3.10: kept for the caller, not shown by the traceback
            error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
        raise


_Init = TypeVar("_Init", bound=Callable[..., None])


def known_options(hints: Mapping[str, str]) -> Callable[[_Init], _Init]:
    """Decorate an ``__init__`` so that an unknown keyword raises a ``TypeError`` that names it,
    says where it belongs when ``hints`` knows (``{"restarts": "restarts are the rule's:
    rule=avrobust.PGD(restarts=2)"}``) and lists the options there are. The signature seen by ``inspect`` and the docs is kept."""

    def decorate(init: _Init) -> _Init:
        parameters = list(inspect.signature(init).parameters.values())[1:]
        names = [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]

        @functools.wraps(init)
        def checked(self: Any, *args: Any, **kwargs: Any) -> None:
            unknown = [key for key in kwargs if key not in names]
            if unknown:
                key = unknown[0]
                hint = f"; {hints[key]}" if key in hints else ""
                raise TypeError(
                    f"{type(self).__name__}: no option {key!r}{hint}. Its options: {names}"
                )
            init(self, *args, **kwargs)

        return cast(_Init, checked)

    return decorate
