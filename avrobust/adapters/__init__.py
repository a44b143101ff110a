"""Give any third-party ``nn.Module`` the avrobust contract: ``model(**inputs) -> AVOutput``.

:func:`wrap` is the entry point; ``selectors`` (where the logits and heads are in an output),
``chain`` (``forward=``: how a model without a usable ``forward`` is called) and ``outputs``
(``output=``: logits, probabilities or log-probabilities) are its parts.
"""

from __future__ import annotations

from .selectors import Selector
from .wrap import wrap
from .wrapped import WrappedModel, as_avoutput

__all__ = ["Selector", "WrappedModel", "as_avoutput", "wrap"]
