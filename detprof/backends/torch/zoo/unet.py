"""A small diffusion noise-prediction UNet (DDPM-style, for 32x32 images): residual blocks with
GroupNorm and a timestep embedding, self-attention (through SDPA) at the lowest resolution and in
the middle, stride-2 convolutions down and bilinear upsampling up.

Bilinear upsampling matters here: on CUDA its backward (``upsample_bilinear2d_backward_out_cuda``)
accumulates with atomics and has no deterministic implementation, so ``audit`` must find it there.
The configuration is ``UNET_SMALL``; its parameter count is in detprof.zoo's ArchSpec notes and
checked in tests/test_zoo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from detprof.backends.torch.zoo.attention import sinusoidal_embedding


@dataclass(frozen=True)
class UNetConfig:
    """Channels of each resolution level (the first at full size), GroupNorm groups, attention heads."""

    image_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128)
    groups: int = 8
    heads: int = 4


UNET_SMALL = UNetConfig()


class ResidualBlock(nn.Module):
    """Two GroupNorm-SiLU-conv layers with the timestep embedding added between them."""

    def __init__(self, channels_in: int, channels_out: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, channels_in), nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_dim, channels_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, channels_out), nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(F.silu(time))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SpatialAttention(nn.Module):
    """Self-attention over the pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, groups: int, heads: int) -> None:
        super().__init__()
        self.norm, self.heads = nn.GroupNorm(groups, channels), heads
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(batch, 3, self.heads, channels // self.heads,
                                                 height * width).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # (batch, heads, pixels, channels per head)
        return x + self.out(y.transpose(-1, -2).reshape(batch, channels, height, width))


class UNet(nn.Module):
    """Predicts the noise in ``noisy`` images at diffusion ``timesteps`` (integers)."""

    def __init__(self, config: UNetConfig = UNET_SMALL) -> None:
        super().__init__()
        chs, groups, time_dim = config.channels, config.groups, 4 * config.channels[0]
        self.base = chs[0]
        self.time_mlp = nn.Sequential(nn.Linear(chs[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(config.image_channels, chs[0], 3, padding=1)
        last = len(chs) - 1
        self.down_blocks = nn.ModuleList(ResidualBlock(chs[max(i - 1, 0)], c, time_dim, groups)
                                         for i, c in enumerate(chs))
        self.downsample = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in chs[:-1])
        self.down_attention = SpatialAttention(chs[-1], groups, config.heads)
        self.middle1 = ResidualBlock(chs[-1], chs[-1], time_dim, groups)
        self.middle_attention = SpatialAttention(chs[-1], groups, config.heads)
        self.middle2 = ResidualBlock(chs[-1], chs[-1], time_dim, groups)
        self.up_blocks = nn.ModuleList(ResidualBlock(2 * c, c, time_dim, groups) for c in chs)
        self.up_attention = SpatialAttention(chs[-1], groups, config.heads)
        self.upsample_convs = nn.ModuleList(nn.Conv2d(chs[i], chs[i - 1], 3, padding=1) for i in range(1, last + 1))
        self.out_norm = nn.GroupNorm(groups, chs[0])
        self.out = nn.Conv2d(chs[0], config.image_channels, 3, padding=1)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        time = self.time_mlp(sinusoidal_embedding(timesteps, self.base))
        h = self.stem(noisy)
        skips = []
        last = len(self.down_blocks) - 1
        for i, block in enumerate(self.down_blocks):
            h = block(h, time)
            if i == last:
                h = self.down_attention(h)
            skips.append(h)
            if i < last:
                h = self.downsample[i](h)
        h = self.middle2(self.middle_attention(self.middle1(h, time)), time)
        for i in range(last, -1, -1):
            h = self.up_blocks[i](torch.cat((h, skips.pop()), dim=1), time)
            if i == last:
                h = self.up_attention(h)
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
                h = self.upsample_convs[i - 1](h)
        return self.out(F.silu(self.out_norm(h)))


def unet_small(num_classes: int = 0, image_size: int = 32) -> UNet:
    """The UNet of ``UNET_SMALL`` (it has no classes; the arguments keep the zoo's builder signature)."""
    return UNet()
