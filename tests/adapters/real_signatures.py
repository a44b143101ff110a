"""Tiny stand-ins with exactly the forward signatures and output structures of five public AV
models (read from their repositories; the layers are tiny, the interfaces are theirs):

- TalkNet (TaoRuijie/TalkNet-ASD, ``talkNetModel``): no ``forward``; ``forward_audio_frontend``
  ``(B, 4T, 13) -> (B, T, 128)``, ``forward_visual_frontend`` ``(B, T, H, W) -> (B, T, 128)``,
  ``forward_cross_attention(x1, x2) -> (x1, x2)``, ``forward_audio_visual_backend(x1, x2) ->
  (B·T, 256)``; the classifier is ``lossAV.FC`` ``Linear(256, 2)``.
- Light-ASD (Junhua-Liao/Light-ASD, ``ASD_Model``): ``forward(audioFeature, visualFeature) ->
  (outsAV, outsV)``, both ``(B·T, 128)``; ``lossAV.FC`` ``Linear(128, 2)``.
- SyncNet (joonson/syncnet_python, ``S``): no ``forward``; ``forward_aud`` ``(B, 1, 13, 20) ->
  (B, 1024)``, ``forward_lip`` ``(B, 3, 5, H, W) -> (B, 1024)``; ``netfcaud``/``netfclip``.
- AVE (YapengTian/AVE-ECCV18, ``att_Net``): ``forward(audio, video)``, ``(B, 10, 128)`` and
  ``(B, 10, 7, 7, 512)`` -> softmax ``(B, 10, 29)``.
- LoCoNet (SJTUwxz/LoCoNet_ASD, ``locoencoder``): no ``forward``; ``forward_audio_frontend``
  ``(B, 1, 4T, 64) -> (B, T, 128)``, ``forward_visual_frontend`` ``(B, T, H, W) -> (B, T, 128)``,
  ``forward_cross_attention(x1, x2)``, ``forward_audio_visual_backend(x1, x2, b=1, s=1) ->
  (B·S·T, 256)``; ``lossAV.FC`` ``Linear(256, 2)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _faces(dim: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16, dim))


class _Frontends(nn.Module):
    """The audio and visual front-ends TalkNet and Light-ASD share (their method names)."""

    def __init__(self) -> None:
        super().__init__()
        self.audioEncoder = nn.Conv1d(13, 128, kernel_size=4, stride=4)
        self.visualEncoder = _faces(128)

    def forward_audio_frontend(self, x):
        return self.audioEncoder(x.transpose(1, 2)).transpose(1, 2)

    def forward_visual_frontend(self, x):
        b, t = x.shape[:2]
        return self.visualEncoder(x.reshape(b * t, 1, *x.shape[2:]) / 255).view(b, t, 128)


class TalkNetModel(_Frontends):
    def forward_cross_attention(self, x1, x2):
        return x1 + x2.mean(1, keepdim=True), x2 + x1.mean(1, keepdim=True)

    def forward_audio_visual_backend(self, x1, x2):
        return torch.reshape(torch.cat((x1, x2), 2), (-1, 256))


class LossAV(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.FC = nn.Linear(features, 2)


class LightASDModel(_Frontends):
    def forward(self, audioFeature, visualFeature):
        audioEmbed = self.forward_audio_frontend(audioFeature)
        visualEmbed = self.forward_visual_frontend(visualFeature)
        outsAV = torch.reshape(audioEmbed + visualEmbed, (-1, 128))
        outsV = torch.reshape(visualEmbed, (-1, 128))
        return outsAV, outsV


class SyncNetS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(2))
        self.netfcaud = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1024))
        self.netcnnlip = nn.Sequential(nn.Conv3d(3, 4, (5, 3, 3)), nn.AdaptiveAvgPool3d((1, 2, 2)))
        self.netfclip = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1024))

    def forward_aud(self, x):
        mid = self.netcnnaud(x)
        return self.netfcaud(mid.view((mid.size()[0], -1)))

    def forward_lip(self, x):
        mid = self.netcnnlip(x)
        return self.netfclip(mid.view((mid.size()[0], -1)))


class AVENet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.affine_audio, self.affine_video = nn.Linear(128, 16), nn.Linear(512, 16)
        self.L2 = nn.Linear(32, 29)

    def forward(self, audio, video):
        v = self.affine_video(video.view(video.size(0) * video.size(1), -1, 512)).mean(1)
        a = self.affine_audio(audio.view(-1, audio.size(-1)))
        out = self.L2(torch.cat((a, v), -1)).view(audio.size(0), 10, 29)
        return F.softmax(out, dim=-1)


class LoCoNetEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audioEncoder = nn.Conv2d(1, 128, kernel_size=(4, 64), stride=(4, 64))
        self.visualEncoder = _faces(128)

    def forward_audio_frontend(self, x):  # (B, 1, 4T, 64) -> (B, T, 128)
        return self.audioEncoder(x).squeeze(-1).transpose(1, 2)

    def forward_visual_frontend(self, x):
        b, t = x.shape[:2]
        return self.visualEncoder(x.reshape(b * t, 1, *x.shape[2:]) / 255).view(b, t, 128)

    def forward_cross_attention(self, x1, x2):
        return x1 + x2.mean(1, keepdim=True), x2 + x1.mean(1, keepdim=True)

    def forward_audio_visual_backend(self, x1, x2, b=1, s=1):
        return torch.reshape(torch.cat((x1, x2), 2), (-1, 256))


def build(name: str) -> dict[str, object]:
    """The model (and its loss module) as the table names them, with inputs of real shapes."""
    b, t = 2, 5
    faces = torch.rand(b, t, 32, 32) * 255
    if name == "TalkNet":
        return {
            "model": TalkNetModel(),
            "loss_av": LossAV(256),
            "inputs": {"audio": torch.randn(b, 4 * t, 13), "visual": faces},
            "logits": (b, t, 2),
        }
    if name == "Light-ASD":
        return {
            "model": LightASDModel(),
            "loss_av": LossAV(128),
            "inputs": {"audio": torch.rand(b, 640 * t) * 2 - 1, "visual": faces},
            "logits": (b, t, 2),
        }
    if name == "SyncNet":
        return {
            "model": SyncNetS(),
            "inputs": {
                "audio": torch.randn(b, 1, 13, 20),
                "visual": torch.rand(b, 3, 5, 24, 24) * 255,
            },
            "logits": (b, 2),
        }
    if name == "AVE":
        clean = {"audio": torch.randn(8, 10, 128), "visual": torch.rand(8, 10, 7, 7, 512)}
        return {
            "model": AVENet(),
            "clean": clean,
            "logits": (2, 10, 29),
            "inputs": {"audio": clean["audio"][:2], "visual": clean["visual"][:2]},
        }
    if name == "LoCoNet":
        return {
            "model": LoCoNetEncoder(),
            "loss_av": LossAV(256),
            "inputs": {"audio": torch.rand(b, 640 * t) * 2 - 1, "visual": faces},
            "logits": (b, t, 2),
        }
    raise KeyError(name)
