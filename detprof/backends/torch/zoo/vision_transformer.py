"""ViT-B/16 (Dosovitskiy et al.) for image classification: 16x16 patches, a class token, learned
positions, pre-norm blocks, a linear classifier on the class token. Its parameter count at 224
pixels and 1000 classes equals ``ViTForImageClassification(ViTConfig(num_labels=1000))``'s,
86,567,656 (tests/test_zoo.py); the positions are sized for the image side it is built for."""

from __future__ import annotations

import torch
from torch import nn

from detprof.backends.torch.zoo.attention import MLP, PreNormBlock, SelfAttention, init_transformer_weights

PATCH = 16  # pixels per patch side


class VisionTransformer(nn.Module):
    """ViT with ``layers`` blocks of width ``dim`` for square images of side ``image_size`` (a
    multiple of the patch side)."""

    def __init__(self, num_classes: int = 1000, image_size: int = 224, dim: int = 768, layers: int = 12,
                 heads: int = 12, hidden: int = 3_072, eps: float = 1e-12) -> None:
        super().__init__()
        if image_size % PATCH:
            raise ValueError(f"image side {image_size} is not a multiple of the {PATCH}-pixel patch")
        patches = (image_size // PATCH) ** 2
        self.patch_embedding = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embedding = nn.Parameter(torch.zeros(1, patches + 1, dim))
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        nn.init.trunc_normal_(self.class_token, std=0.02)
        self.blocks = nn.ModuleList(
            PreNormBlock(SelfAttention(dim, heads), MLP(dim, hidden), nn.LayerNorm(dim, eps=eps),
                         nn.LayerNorm(dim, eps=eps))
            for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=eps)
        self.classifier = nn.Linear(dim, num_classes)
        init_transformer_weights(self)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        x = torch.cat((self.class_token.expand(x.shape[0], -1, -1), x), dim=1) + self.position_embedding
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.final_norm(x)[:, 0])


def vit_b16(num_classes: int = 1000, image_size: int = 224) -> VisionTransformer:
    """ViT-B/16 for ``image_size`` pixels."""
    return VisionTransformer(num_classes, image_size)
