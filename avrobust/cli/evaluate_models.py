"""The models of ``avrobust evaluate`` (called by :mod:`.evaluate`): a TalkNet checkpoint, its
architecture from ``--model`` / ``--face-size`` or from the JSON the demo writes beside it, or a
researcher's own model from ``--model MODULE:FACTORY`` (:mod:`.factories`) with an optional state
dict. Whatever does not fit exits 2 with one line naming the option, before any work."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from torch import nn

from .._checks import describe
from .demo import library_error
from .factories import FactoryError, call_factory, is_factory

__all__ = ["build_models", "read_sidecar"]


def read_sidecar(checkpoint: str) -> tuple[str, dict[str, Any]] | None:
    """The model settings the demo records beside a checkpoint (``A-<hash>.json`` next to
    ``A-<hash>.model``, written by :func:`avrobust.demo.training.load_or_train`).

    Args:
        checkpoint: the checkpoint file.

    Returns:
        ``(json path, {"variant": "tiny", "face_size": 32, ...})``: the TalkNet variant, the face
        crop side in pixels and any other configuration fields of the model (e.g.
        ``cross_attention=False`` for the demo's ncTalkNet); ``None`` when there is no such file,
        or it is not the demo's (no ``"model"`` entry with a variant and a face size).
    """
    path = os.path.splitext(checkpoint)[0] + ".json"
    try:
        with open(path) as handle:
            payload = json.load(handle)
    except (OSError, ValueError):
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("variant"), str)
        or not isinstance(model.get("face_size"), int)
    ):
        return None
    return path, dict(model)


def build_models(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[nn.Module, nn.Module | None, str]:
    """``(target, surrogate or None, the target's name for titles)`` the options ask for.

    The surrogate's architecture: ``--surrogate-model``, else the JSON beside ``--surrogate``,
    else ``--model``'s."""
    model, label = _model(args, parser, "--checkpoint", args.checkpoint, args.model, "--model")
    surrogate = None
    if args.surrogate is not None:
        if args.surrogate_model is not None:
            kind, kind_option = args.surrogate_model, "--surrogate-model"
            surrogate, _ = _model(args, parser, "--surrogate", args.surrogate, kind, kind_option)
        else:
            surrogate, _ = _model(
                args, parser, "--surrogate", args.surrogate, args.model, "--model", inherited=True
            )
    return model, surrogate, label


def _model(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    option: str,
    path: str | None,
    kind: str | None,
    kind_option: str,
    *,
    inherited: bool = False,
) -> tuple[nn.Module, str]:
    """One model and its name: ``kind`` (``None``: not given) is a TalkNet variant or a
    factory; an ``inherited`` kind (the surrogate's, from ``--model``) yields to a sidecar."""
    sidecar = read_sidecar(path) if path is not None else None
    if kind is not None and is_factory(kind) and not (inherited and sidecar is not None):
        return _user_model(parser, kind, path, option, kind_option, seed=args.seed), kind
    if path is None:
        parser.error(
            f"the following arguments are required: {option} (the weights of a TalkNet "
            f"{kind_option} {kind or 'talknet'}; only a {kind_option} MODULE:FACTORY may go "
            "without)"
        )
    variant, overrides = _talknet_setting(
        args, parser, (option, path), (kind, kind_option), inherited=inherited
    )
    return _talknet(parser, option, path, variant, kind_option, overrides), variant


def _talknet_setting(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    checkpoint: tuple[str, str],
    architecture: tuple[str | None, str],
    *,
    inherited: bool,
) -> tuple[str, dict[str, Any]]:
    """``(variant, configuration overrides)`` of the TalkNet in ``checkpoint`` (``(option,
    path)``): from its sidecar (flags that contradict it exit 2 saying which to pass; an
    ``inherited`` kind is not checked), else from the kind (``(kind or None, its option)``) and
    the flags."""
    (option, path), (kind, kind_option) = checkpoint, architecture
    found = read_sidecar(path)
    overrides: dict[str, Any] = {}
    if found is None:
        variant = kind or "talknet"
        if args.face_size is not None:
            overrides["face_size"] = args.face_size
    else:
        json_path, overrides = found
        variant = overrides.pop("variant")
        size = overrides["face_size"]
        said = (
            f"{json_path} records the model of {option} as {variant} with {size}-px faces: pass "
            f"{'--surrogate-model' if inherited else kind_option} {variant} --face-size {size}, "
            "or leave both out"
        )
        if kind is not None and kind != variant and not inherited:
            parser.error(f"{kind_option}: {kind} contradicts {said}")
        if args.face_size is not None and args.face_size != size:
            parser.error(f"--face-size: {args.face_size} contradicts {said}")
    if args.fps is not None:
        overrides["fps"] = args.fps
    return variant, overrides


def _talknet(
    parser: argparse.ArgumentParser,
    option: str,
    path: str,
    variant: str,
    kind_option: str,
    overrides: dict[str, Any],
) -> nn.Module:
    """``TalkNet.from_checkpoint``; a setting the model refuses, a file that is no checkpoint,
    or one of another architecture exits 2 with one line naming ``option`` (and
    ``kind_option``)."""
    from ..models import TalkNet
    from ..models.talknet import CheckpointMismatchError, TalkNetConfig

    try:
        TalkNetConfig.variant(variant, **overrides)
    except (ValueError, TypeError) as exc:
        parser.error(library_error(exc, {"face_size": "--face-size", "fps": "--fps"}))
    try:
        return TalkNet.from_checkpoint(path, variant, **overrides)
    except CheckpointMismatchError as exc:
        parser.error(
            f"{option}: {' '.join(str(exc).split())}; was it saved from another architecture "
            f"than {kind_option} {variant}? Pass the {kind_option} and --face-size it was saved "
            "with"
        )
    except (ValueError, TypeError, OSError) as exc:
        message = " ".join(str(exc).split())
        parser.error(f"{option}: {message.removeprefix('path: ')}")
    raise AssertionError("parser.error exits")  # pragma: no cover


def _user_model(
    parser: argparse.ArgumentParser,
    spec: str,
    path: str | None,
    option: str,
    kind_option: str,
    *,
    seed: int,
) -> nn.Module:
    """``FACTORY()`` (seeded with ``seed``), with the state dict in ``path`` if any, in eval
    mode."""
    try:
        model = call_factory(spec, seed=seed)
    except FactoryError as exc:
        parser.error(f"{kind_option}: {exc}")
    if not isinstance(model, nn.Module):
        parser.error(
            f"{kind_option}: {spec}() returned {describe(model)}; expected an nn.Module called as "
            "model(**inputs) that returns avrobust.AVOutput or logits"
        )
    if path is not None:
        _load_weights(parser, model, path, option, spec)
    return model.eval()


def _load_weights(
    parser: argparse.ArgumentParser, model: nn.Module, path: str, option: str, spec: str
) -> None:
    """Load the state dict in ``path`` into ``model`` strictly (into the model inside an
    :func:`avrobust.wrap` when the weights are the inner model's); keys that do not fit exit 2
    listing them."""
    from ..adapters.wrapped import WrappedModel
    from ..models.talknet.checkpoint import LoadReport, read_state_dict

    try:
        state = read_state_dict(path)
    except (ValueError, TypeError, OSError) as exc:
        parser.error(f"{option}: {' '.join(str(exc).split()).removeprefix('path: ')}")
    target, report = model, _fit(model, state, LoadReport)
    if not report.ok and isinstance(model, WrappedModel):
        inner = _fit(model.model, state, LoadReport)
        if inner.ok:
            target, report = model.model, inner
    if not report.ok:
        parser.error(f"{option}: {path} does not fit {spec}(): {report.describe()}")
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        parser.error(f"{option}: {path} does not load into {spec}(): {' '.join(str(exc).split())}")


def _fit(model: nn.Module, state: dict[str, Any], report: Any) -> Any:
    """A ``LoadReport`` of ``state`` against ``model``'s own state dict."""
    own = model.state_dict()
    return report(
        missing=[k for k in own if k not in state],
        unexpected=[k for k in state if k not in own],
        mismatched=[
            (k, tuple(v.shape), tuple(own[k].shape))
            for k, v in state.items()
            if k in own and tuple(v.shape) != tuple(own[k].shape)
        ],
    )
