"""my_av_model.py: a small audio-visual model and its data, evaluated by `avrobust evaluate`."""

import torch
from torch import nn
from torch.utils.data import Dataset

from avrobust import AVOutput

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 video frames per second
FACE = 24  # face crops of 24 x 24 pixels


class SpeakingClips(Dataset):
    """``count`` clips of ``frames`` frames: ``({"audio": (640 T,) in [-1, 1], "visual": (T, 24,
    24) in 0-255}, labels (T,))``, label 1 where the person speaks (loud audio, an open mouth)."""

    def __init__(self, count=48, frames=8, seed=0):
        self.count, self.frames, self.seed = count, frames, seed

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 100_003 + i)  # the same clip every time
        labels = (torch.rand(self.frames, generator=g) < 0.5).long()
        loudness = 0.02 + 0.03 * labels.float()
        audio = torch.randn(self.frames, SAMPLES_PER_FRAME, generator=g) * loudness[:, None]
        visual = 100 + 20 * torch.randn(self.frames, FACE, FACE, generator=g)
        visual[:, 15:20, 7:17] += 15 * labels.float()[:, None, None]  # the mouth opens
        return {"audio": audio.clamp(-1, 1).flatten(), "visual": visual.clamp(0, 255)}, labels


class TinyAV(nn.Module):
    """``model(audio=(B, 640 T), visual=(B, T, 24, 24)) -> AVOutput`` with frame logits
    ``(B, T, 2)`` and per-frame embeddings ``(B, T, 16)`` of each modality."""

    def __init__(self, dim=16):
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(SAMPLES_PER_FRAME, dim), nn.ReLU())
        self.visual = nn.Sequential(nn.Flatten(2), nn.Linear(FACE * FACE, dim), nn.ReLU())
        self.head = nn.Linear(2 * dim, 2)

    def forward(self, audio, visual):
        frames = visual.shape[1]
        a = self.audio(audio.reshape(audio.shape[0], frames, SAMPLES_PER_FRAME).abs())
        v = self.visual(visual / 255)
        logits = self.head(torch.cat([a, v], dim=-1))
        return AVOutput(logits, embeddings={"audio": a, "visual": v})


def build():
    """The model, for `avrobust evaluate --model my_av_model.py:build`."""
    return TinyAV()


def held_out():
    """The evaluated clips, for `avrobust evaluate --data my_av_model.py:held_out`."""
    return SpeakingClips(count=48, seed=1)


if __name__ == "__main__":  # `python my_av_model.py` trains the model and saves my_av_model.pt
    torch.manual_seed(0)
    model, clips = build(), SpeakingClips(count=256, seed=0)
    loader = torch.utils.data.DataLoader(clips, batch_size=32, shuffle=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for inputs, labels in loader:
            loss = nn.functional.cross_entropy(
                model(**inputs).logits.flatten(0, 1), labels.flatten()
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    torch.save(model.state_dict(), "my_av_model.pt")
