"""Adversarial examples for people: genuine/adversarial pairs as WAV files and PNG frames.

Push-Pull §4.2 checks that its perturbations are imperceptible with an XAB test: a listener (or
viewer) gets two stimuli A and B, one genuine and one adversarial in random order, and a
reference X equal to one of them, and says which one X is. :func:`export_pairs` writes the
material of such a test, with no dependency beyond the standard library: 16-bit PCM WAV files
(``wave``) and 8-bit grayscale PNG images (written here with ``zlib``), plus the trial sheet and
its answer key. Moving pictures (animated GIF at the clip's frame rate, ``gif=True``) need pillow
(``pip install "avrobust[ava]"``); a GIF carries no sound, so play it beside the WAV.
"""

from __future__ import annotations

import csv
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._checks import check_finite_tensor, check_int, check_number, check_tensor
from ._export_writers import (
    _AUDIO,
    _OTHER_UNITS,
    _PIXELS,
    _checked,
    _pillow_image,
    write_gif,
    write_png,
    write_wav,
)
from .metrics import psnr, snr

__all__ = ["ExportedPair", "export_pairs", "write_gif", "write_png", "write_wav"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ExportedPair:
    """The files of one exported genuine/adversarial pair.

    Attributes:
        index: the clip's index in the batch given.
        folder: the pair's folder.
        files: ``{"genuine_audio", "adversarial_audio", "genuine_strip", "adversarial_strip",
            ...}`` paths (only the modalities given).
        snr_db: audio signal-to-perturbation ratio in dB (``inf`` if untouched, ``None`` without
            audio).
        psnr_db: video PSNR in dB (``None`` without video).
    """

    index: int
    folder: str
    files: dict[str, str]
    snr_db: float | None
    psnr_db: float | None


def export_pairs(
    out_dir: PathLike,
    clean: Mapping[str, Tensor],
    adversarial: Mapping[str, Tensor],
    *,
    labels: Tensor | None = None,
    indices: Sequence[int] | None = None,
    audio: str = "audio",
    visual: str = "visual",
    sample_rate: int = 16000,
    scale: int = 4,
    frames: bool = True,
    gif: bool = False,
    fps: float = 25.0,
    seed: int = 0,
) -> list[ExportedPair]:
    """Write genuine/adversarial pairs (WAV + PNG) and an XAB trial sheet for a listening test.

    For each chosen clip ``i``, ``out_dir/pair_<i>/`` gets ``genuine.wav``, ``adversarial.wav``,
    ``genuine_strip.png`` and ``adversarial_strip.png`` (all frames side by side) and, with
    ``frames``, one PNG per frame in ``genuine_frames/`` and ``adversarial_frames/``; with
    ``gif``, ``genuine.gif`` and ``adversarial.gif`` (the clip moving at ``fps``; needs pillow).
    ``out_dir`` also gets ``manifest.csv`` (files, label, SNR, PSNR per pair; the label as
    text a spreadsheet keeps: ``speaking`` / ``not speaking`` for clip labels, ``frames: 0 0 1 1``
    for frame labels), the test itself in
    ``xab/trial_<n>/`` (``A``, ``B`` and ``X`` as ``.wav`` and ``.png``: A and B are the genuine
    and the adversarial clip in an order drawn per trial, X a copy of one of them, both drawn from
    ``seed`` and balanced over the trials: half put the genuine clip first, half have X = A, in
    random order) and the answer key
    ``xab_key.csv`` (which of A and B is genuine, and whether X is A or B): give the volunteers
    the ``xab`` folder and keep the key. Push-Pull's volunteers scored 53.33%, chance level.

    Args:
        out_dir: output folder (created).
        clean: genuine inputs: ``audio`` ``(B, S)`` waveform in [-1, 1] and/or ``visual``
            ``(B, T, H, W)`` grayscale frames 0–255 (e.g. the attack's inputs).
        adversarial: the same keys and shapes (e.g. ``AttackResult.inputs``).
        labels: optional ``(B,)`` or ``(B, T)`` labels, written to the manifest.
        indices: which clips to export (default: all).
        audio: the audio modality's name.
        visual: the video modality's name.
        sample_rate: audio rate in Hz.
        scale: PNG up-scaling factor (nearest neighbour).
        frames: also write one PNG per frame.
        gif: also write each clip as an animated GIF (copied into the XAB trials too).
        fps: the video's frame rate in frames per second, for the GIFs (TalkNet: 25).
        seed: seed of the trials' A/B orders and choices of X.

    Returns:
        One :class:`ExportedPair` per clip.

    Raises:
        ValueError: neither modality present, shapes that differ between ``clean`` and
            ``adversarial``, or ``labels`` of another batch size.
        ImportError: ``gif=True`` without pillow (checked before anything is written).
        TypeError: a given modality or ``labels`` that is not a tensor.
    """
    names = _check_pairs(clean, adversarial, labels, audio, visual)
    batch = int(clean[names[0]].shape[0])
    chosen = list(range(batch)) if indices is None else [int(i) for i in indices]
    for i in chosen:
        if not 0 <= i < batch:
            raise ValueError(f"indices: expected values in [0, {batch}), got {i}")
    if gif and visual in names:
        check_number(fps, "fps", min_value=0.0, strict=True)
        _pillow_image("export_pairs(gif=True)")  # fail before any file is written
    for m in names:  # warned once per modality here, not once per file below
        check_finite_tensor(adversarial[m].detach(), f"adversarial[{m!r}]")
        _checked(clean[m], f"clean[{m!r}]", _AUDIO if m == audio else _PIXELS)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _OTHER_UNITS, UserWarning)
        return _export(out_dir, clean, adversarial, names, chosen, labels, audio, visual,
                       sample_rate=sample_rate, scale=scale, frames=frames, gif=gif, fps=fps,
                       seed=seed)  # fmt: skip


def _export(
    out_dir: PathLike,
    clean: Mapping[str, Tensor],
    adversarial: Mapping[str, Tensor],
    names: list[str],
    chosen: list[int],
    labels: Tensor | None,
    audio: str,
    visual: str,
    **options: Any,
) -> list[ExportedPair]:
    """:func:`export_pairs` after its checks: write the pairs, the trials and the key."""
    sample_rate, scale, frames, gif, fps = (
        options[k] for k in ("sample_rate", "scale", "frames", "gif", "fps")
    )
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(check_int(options["seed"], "seed", min_value=0))
    pairs: list[ExportedPair] = []
    key: list[list[str]] = []
    orders = zip(_balanced(len(chosen), gen), _balanced(len(chosen), gen))
    for i, order in zip(chosen, orders):
        folder = os.path.join(os.fspath(out_dir), f"pair_{i:03d}")
        os.makedirs(folder, exist_ok=True)
        files: dict[str, str] = {}
        ratio = peak = None
        if audio in names:
            for kind, source in (("genuine", clean), ("adversarial", adversarial)):
                files[f"{kind}_audio"] = os.path.join(folder, f"{kind}.wav")
                write_wav(files[f"{kind}_audio"], source[audio][i], sample_rate)
            ratio = float(
                snr(clean[audio][i : i + 1].float(), adversarial[audio][i : i + 1].float())
            )
        if visual in names:
            for kind, source in (("genuine", clean), ("adversarial", adversarial)):
                files.update(
                    _write_clip(folder, kind, source[visual][i], scale=scale, frames=frames,
                                gif=gif, fps=fps)
                )  # fmt: skip
            peak = float(
                psnr(clean[visual][i : i + 1].float(), adversarial[visual][i : i + 1].float())
            )
        pairs.append(ExportedPair(i, folder, files, ratio, peak))
        key.append(_write_trial(out_dir, len(key) + 1, i, files, order))
    _write_manifest(out_dir, pairs, labels)
    _write_rows(
        os.path.join(os.fspath(out_dir), "xab_key.csv"),
        ["trial", "pair", "A", "B", "X is"],
        key,
    )
    return pairs


def _check_pairs(
    clean: Mapping[str, Tensor],
    adversarial: Mapping[str, Tensor],
    labels: Tensor | None,
    audio: str,
    visual: str,
) -> list[str]:
    """The modalities present, checked: the same shapes in ``clean`` and ``adversarial``,
    ``labels`` of the same batch size."""
    names = [m for m in (audio, visual) if m in clean]
    if not names:
        raise ValueError(
            f"clean: expected a {audio!r} and/or a {visual!r} tensor, got keys {sorted(clean)}"
        )
    for m in names:
        if m not in adversarial:
            raise ValueError(f"adversarial: missing {m!r} (present in clean)")
        check_tensor(clean[m], f"clean[{m!r}]", ndims=(2,) if m == audio else (4,))
        check_tensor(adversarial[m], f"adversarial[{m!r}]")
        if tuple(adversarial[m].shape) != tuple(clean[m].shape):
            raise ValueError(
                f"adversarial[{m!r}]: expected shape {tuple(clean[m].shape)} as clean, got "
                f"{tuple(adversarial[m].shape)}"
            )
    batch = int(clean[names[0]].shape[0])
    if labels is not None:
        check_tensor(labels, "labels", ndims=(1, 2))
        if labels.shape[0] != batch:
            raise ValueError(
                f"labels: expected {batch} clips (as the inputs), got shape {tuple(labels.shape)}"
            )
    return names


def _write_clip(
    folder: str, kind: str, clip: Tensor, *, scale: int, frames: bool, gif: bool, fps: float
) -> dict[str, str]:
    """One clip's ``(T, H, W)`` frames as a strip PNG, optionally a GIF and one PNG per frame;
    returns ``{"<kind>_strip": path, "<kind>_gif": path}``."""
    files = {f"{kind}_strip": os.path.join(folder, f"{kind}_strip.png")}
    write_png(files[f"{kind}_strip"], torch.cat(list(clip), dim=1), scale=scale)
    if gif:
        files[f"{kind}_gif"] = os.path.join(folder, f"{kind}.gif")
        write_gif(files[f"{kind}_gif"], clip, fps=fps, scale=scale)
    if frames:
        sub = os.path.join(folder, f"{kind}_frames")
        os.makedirs(sub, exist_ok=True)
        for t, frame in enumerate(clip):
            write_png(os.path.join(sub, f"frame_{t:04d}.png"), frame, scale=scale)
    return files


def _balanced(count: int, gen: torch.Generator) -> list[bool]:
    """``count`` coin flips drawn from ``gen``, as many true as false (the odd one drawn too), in
    a random order: over the trials both outcomes occur, and a listener who always answers the
    same scores chance, not more."""
    heads = count // 2 + (count % 2) * int(torch.randint(2, (1,), generator=gen))
    return [int(j) < heads for j in torch.randperm(count, generator=gen)]


def _write_trial(
    out_dir: PathLike, number: int, index: int, files: Mapping[str, str], order: tuple[bool, bool]
) -> list[str]:
    """XAB trial ``number`` of pair ``index`` in ``out_dir/xab/trial_<n>/``: A and B the genuine
    and the adversarial clip (``order[0]``: the genuine one is A), X a copy of A (``order[1]``)
    or of B; returns its key row."""
    genuine_first, x_is_a = order
    a, b = ("genuine", "adversarial") if genuine_first else ("adversarial", "genuine")
    trial = os.path.join(os.fspath(out_dir), "xab", f"trial_{number:03d}")
    os.makedirs(trial, exist_ok=True)
    for role, kind in (("A", a), ("B", b), ("X", a if x_is_a else b)):
        for what, suffix in (("audio", ".wav"), ("strip", ".png"), ("gif", ".gif")):
            if f"{kind}_{what}" in files:
                shutil.copyfile(files[f"{kind}_{what}"], os.path.join(trial, role + suffix))
    return [f"trial_{number:03d}", f"pair_{index:03d}", a, b, "A" if x_is_a else "B"]


def _write_manifest(out_dir: PathLike, pairs: list[ExportedPair], labels: Tensor | None) -> None:
    """``manifest.csv``: per pair its label, SNR, PSNR and files (relative paths)."""
    kinds = sorted({k for p in pairs for k in p.files})
    _write_rows(
        os.path.join(os.fspath(out_dir), "manifest.csv"),
        ["pair", "label", "snr_db", "psnr_db", *kinds],
        [
            [
                f"pair_{p.index:03d}",
                "" if labels is None else _label_text(labels[p.index]),
                "" if p.snr_db is None else f"{p.snr_db:.2f}",
                "" if p.psnr_db is None else f"{p.psnr_db:.2f}",
                *(os.path.relpath(p.files[k], out_dir) if k in p.files else "" for k in kinds),
            ]
            for p in pairs
        ],
    )


def _label_text(label: Tensor) -> str:
    """A clip's label as text a spreadsheet keeps: ``"speaking"`` / ``"not speaking"`` for a
    clip label, ``"frames: 0 0 1 1"`` for frame labels (digits alone, ``"0011"``, are read as
    the number 11)."""
    if label.ndim == 0:
        return "speaking" if int(label) else "not speaking"
    return "frames: " + " ".join(str(int(v)) for v in label.reshape(-1).tolist())


def _write_rows(path: str, head: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(head)
        writer.writerows(rows)
