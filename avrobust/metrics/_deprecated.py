"""Old metric names, importable for one more release with a ``DeprecationWarning``.

Functional and streaming twins share one name (snake_case and CamelCase): ``average_precision``
and ``AveragePrecision`` (were ``ava_average_precision`` and ``MeanAveragePrecision``), ``snr``
(was ``snr_db``). The modules of :mod:`avrobust.metrics` resolve the old names through
:func:`deprecated_attribute` from their module ``__getattr__``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = ["RENAMED", "deprecated_attribute"]

# old name -> (module of the new object, relative to avrobust.metrics; new name)
RENAMED: dict[str, tuple[str, str]] = {
    "ava_average_precision": (".functional", "average_precision"),
    "snr_db": (".perceptibility", "snr"),
    "MeanAveragePrecision": (".streaming", "AveragePrecision"),
}


def deprecated_attribute(module: str, name: str, offered: tuple[str, ...]) -> Any:
    """The new object behind the old ``name`` of ``module``, with a ``DeprecationWarning``.

    Args:
        module: the module asked (its ``__name__``), for the messages.
        name: the attribute asked for.
        offered: the old names this module offers.

    Raises:
        AttributeError: ``name`` is not an old name of this module.
    """
    if name not in offered:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    where, new = RENAMED[name]
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in the next release: use "
        f"avrobust.metrics.{new} (the same function under the metrics' one naming scheme)",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(where, "avrobust.metrics"), new)
