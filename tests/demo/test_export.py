"""Export of genuine/adversarial pairs for an XAB test: WAV files, PNG frames, the answer key."""

from __future__ import annotations

import csv
import struct
import wave
import zlib

import numpy as np
import pytest
import torch

from avrobust.export import export_pairs, write_png, write_wav


def read_png(path) -> np.ndarray:
    """A minimal PNG decoder for the files write_png makes (8-bit, filter 0)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and b"IEND" in chunks
    channels = 1 if colour == 0 else 3
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    assert (rows[:, 0] == 0).all()
    image = rows[:, 1:].reshape(height, width, channels)
    return image[..., 0] if channels == 1 else image


def read_wav(path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as handle:
        assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
        return np.frombuffer(handle.readframes(handle.getnframes()), "<i2"), handle.getframerate()


def test_wav_round_trip(tmp_path) -> None:
    audio = torch.linspace(-1, 1, 1001)
    write_wav(tmp_path / "a.wav", audio, 16000)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and samples.shape == (1001,)
    assert samples[0] == -32767 and samples[-1] == 32767
    np.testing.assert_allclose(samples / 32767, audio.numpy(), atol=1 / 32767)
    write_wav(tmp_path / "b.wav", torch.tensor([[2.0, -3.0]]))  # clipped, (1, S) accepted
    assert read_wav(tmp_path / "b.wav")[0].tolist() == [32767, -32768]
    with pytest.raises(ValueError, match=r"audio: expected a mono waveform \(S,\) or \(1, S\)"):
        write_wav(tmp_path / "c.wav", torch.zeros(2, 10))


def test_png_round_trip(tmp_path) -> None:
    image = torch.arange(12, dtype=torch.float32).view(3, 4) * 20
    write_png(tmp_path / "g.png", image)
    np.testing.assert_array_equal(read_png(tmp_path / "g.png"), image.numpy().astype(np.uint8))
    write_png(tmp_path / "big.png", image, scale=3)
    big = read_png(tmp_path / "big.png")
    assert big.shape == (9, 12) and big[4, 7] == image[1, 2]
    rgb = torch.stack([image, 255 - image, torch.full_like(image, 300)], dim=-1)
    write_png(tmp_path / "c.png", rgb)
    decoded = read_png(tmp_path / "c.png")
    assert decoded.shape == (3, 4, 3) and (decoded[..., 2] == 255).all()  # clipped to 255
    with pytest.raises(ValueError, match=r"image: expected \(H, W\) grayscale or \(H, W, 3\) RGB"):
        write_png(tmp_path / "d.png", torch.zeros(2, 3, 4))


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    clean = {
        "audio": torch.rand(3, 1280, generator=g) * 0.6 - 0.3,
        "visual": torch.rand(3, 2, 8, 8, generator=g) * 200 + 20,
    }
    delta = {"audio": 5e-4, "visual": 0.5}
    adversarial = {
        k: v + delta[k] * torch.sign(torch.randn(v.shape, generator=g)) for k, v in clean.items()
    }
    return clean, adversarial, torch.tensor([[1, 1], [0, 0], [1, 0]])


def test_export_pairs_writes_an_xab_test(tmp_path, pair) -> None:
    clean, adversarial, labels = pair
    exported = export_pairs(tmp_path, clean, adversarial, labels=labels, indices=[0, 2], scale=2)
    assert [p.index for p in exported] == [0, 2]
    first = tmp_path / "pair_000"
    for name in ("genuine.wav", "adversarial.wav", "genuine_strip.png", "adversarial_strip.png"):
        assert (first / name).exists()
    assert sorted(p.name for p in (first / "adversarial_frames").iterdir()) == [
        "frame_0000.png",
        "frame_0001.png",
    ]
    strip = read_png(first / "genuine_strip.png")
    assert strip.shape == (16, 32)  # 2 frames of 8x8 side by side, scaled x2
    assert strip[0, 0] == round(float(clean["visual"][0, 0, 0, 0]))
    genuine, _ = read_wav(first / "genuine.wav")
    attacked, _ = read_wav(first / "adversarial.wav")
    assert 10 <= np.abs(attacked.astype(int) - genuine.astype(int)).max() <= 18  # 5e-4 ≈ 16 steps
    assert 20 < exported[0].snr_db < 70 and 50 < exported[0].psnr_db < 60
    with open(tmp_path / "manifest.csv") as handle:
        manifest = list(csv.DictReader(handle))
    assert [r["pair"] for r in manifest] == ["pair_000", "pair_002"]
    assert manifest[1]["label"] == "frames: 1 0" and float(manifest[0]["psnr_db"]) > 50
    with open(tmp_path / "xab_key.csv") as handle:
        key = list(csv.DictReader(handle))
    assert len(key) == 2
    for row in key:
        trial = tmp_path / "xab" / row["trial"]
        assert {p.name for p in trial.iterdir()} == {
            "A.wav",
            "B.wav",
            "X.wav",
            "A.png",
            "B.png",
            "X.png",
        }
        assert {row["A"], row["B"]} == {"genuine", "adversarial"} and row["X is"] in ("A", "B")
        x, same = (trial / "X.wav").read_bytes(), (trial / f"{row['X is']}.wav").read_bytes()
        assert x == same  # X is a copy of the stimulus the key names
        source = tmp_path / row["pair"] / f"{row['A']}.wav"
        assert (trial / "A.wav").read_bytes() == source.read_bytes()
    again = tmp_path / "again"
    export_pairs(again, clean, adversarial, indices=[0, 2], frames=False)
    assert (again / "xab_key.csv").read_text() == (tmp_path / "xab_key.csv").read_text()  # seeded
    assert not (again / "pair_000" / "genuine_frames").exists()


@pytest.mark.parametrize(
    ("labels", "texts"),
    [
        (
            [[0, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]],
            ["frames: 0 0 1 1", "frames: 1 0 1 0", "frames: 0 0 0 0"],
        ),
        ([0, 1, 1], ["not speaking", "speaking", "speaking"]),
    ],
)
def test_manifest_labels_stay_text_in_a_spreadsheet(tmp_path, pair, labels, texts) -> None:
    """Frame labels such as 0011 were written as digit strings, which spreadsheets read as the
    number 11. Each label cell must contain a letter (no number, date or fraction parse), and
    the frame labels must read back exactly."""
    clean, adversarial, _ = pair
    clean = {"audio": clean["audio"]}
    adversarial = {"audio": adversarial["audio"]}
    export_pairs(tmp_path, clean, adversarial, labels=torch.tensor(labels))
    with open(tmp_path / "manifest.csv", newline="") as handle:
        cells = [row["label"] for row in csv.DictReader(handle)]
    assert cells == texts
    for cell, label in zip(cells, labels):
        assert any(c.isalpha() for c in cell)
        with pytest.raises(ValueError):
            float(cell)
        if cell.startswith("frames: "):
            assert [int(v) for v in cell.removeprefix("frames: ").split()] == label


def test_export_audio_only(tmp_path, pair) -> None:
    clean, adversarial, _ = pair
    exported = export_pairs(tmp_path, {"audio": clean["audio"]}, {"audio": adversarial["audio"]})
    assert len(exported) == 3 and exported[0].psnr_db is None and exported[0].snr_db is not None
    assert set(exported[0].files) == {"genuine_audio", "adversarial_audio"}


def test_export_errors(tmp_path, pair) -> None:
    clean, adversarial, labels = pair
    with pytest.raises(ValueError, match=r"clean: expected a 'audio' and/or a 'visual' tensor"):
        export_pairs(tmp_path, {"depth": clean["audio"]}, adversarial)
    with pytest.raises(ValueError, match=r"adversarial\['visual'\]: expected shape \(3, 2, 8, 8\)"):
        export_pairs(tmp_path, clean, {**adversarial, "visual": adversarial["visual"][:2]})
    with pytest.raises(ValueError, match=r"adversarial: missing 'audio'"):
        export_pairs(tmp_path, clean, {"visual": adversarial["visual"]})
    with pytest.raises(ValueError, match=r"indices: expected values in \[0, 3\), got 5"):
        export_pairs(tmp_path, clean, adversarial, indices=[5])
    with pytest.raises(TypeError, match=r"adversarial\['audio'\]: expected a torch.Tensor"):
        export_pairs(tmp_path, clean, {**adversarial, "audio": adversarial["audio"].numpy()})
    with pytest.raises(
        ValueError, match=r"labels: expected 3 clips \(as the inputs\), got shape \(2, 2\)"
    ):
        export_pairs(tmp_path / "l", clean, adversarial, labels=labels[:2])
    assert not (tmp_path / "l").exists()  # refused before anything is written


def read_gif(path) -> tuple[np.ndarray, list[int], int]:
    """Frames ``(T, H, W)``, per-frame durations (ms) and the loop count, read with pillow."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        frames = [np.array(f.convert("L")) for f in ImageSequence.Iterator(image)]
        durations = [f.info["duration"] for f in ImageSequence.Iterator(image)]
        return np.stack(frames), durations, image.info.get("loop")


def test_gif_round_trip_is_lossless_at_the_frame_rate(tmp_path) -> None:
    pytest.importorskip("PIL")
    from avrobust.export import write_gif

    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(5, 6, 7, generator=gen) * 300 - 20  # outside 0-255 too: clipped
    frames[0, 0, :4] = torch.tensor([0.0, 1.0, 254.0, 255.0])  # the extreme levels survive
    write_gif(tmp_path / "clip.gif", frames, fps=25, scale=2)
    read, durations, loop = read_gif(tmp_path / "clip.gif")
    expected = np.clip(np.rint(frames.numpy()), 0, 255).astype(np.uint8)
    assert read.shape == (5, 12, 14)
    assert np.array_equal(read[:, ::2, ::2], expected)  # every grey level, no dithering
    assert durations == [40] * 5 and loop == 0  # 25 fps, looping
    with pytest.raises(ValueError, match=r"frames: expected \(T, H, W\)"):
        write_gif(tmp_path / "bad.gif", frames[0])
    with pytest.raises(ValueError, match="fps: must be a finite number > 0, got 0"):
        write_gif(tmp_path / "bad.gif", frames, fps=0)


def test_export_pairs_with_gifs_puts_them_in_the_trials(tmp_path, pair) -> None:
    pytest.importorskip("PIL")
    clean, adversarial, _ = pair
    exported = export_pairs(tmp_path, clean, adversarial, indices=[1], gif=True, scale=1)
    files = exported[0].files
    genuine, _, _ = read_gif(files["genuine_gif"])
    adv, _, _ = read_gif(files["adversarial_gif"])
    assert np.array_equal(genuine, np.clip(np.rint(clean["visual"][1].numpy()), 0, 255))
    assert np.array_equal(adv, np.clip(np.rint(adversarial["visual"][1].numpy()), 0, 255))
    trial = tmp_path / "xab" / "trial_001"
    assert {p.name for p in trial.iterdir()} >= {"A.gif", "B.gif", "X.gif"}
    with open(tmp_path / "xab_key.csv") as handle:
        key = next(csv.DictReader(handle))
    x_source = trial / (key["X is"] + ".gif")
    assert x_source.read_bytes() == (trial / "X.gif").read_bytes()


def test_export_pairs_gif_without_pillow_says_what_to_install(tmp_path, pair, monkeypatch):
    import sys

    clean, adversarial, _ = pair
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now fails
    with pytest.raises(ImportError, match=r'pip install "avrobust\[ava\]"'):
        export_pairs(tmp_path / "out", clean, adversarial, gif=True)
    assert not (tmp_path / "out").exists()  # nothing written before the error
