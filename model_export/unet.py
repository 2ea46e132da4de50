"""A small 3D U-Net that a CPU can train in minutes.

The first layer is a 2x2x2 stride-2 convolution ("patchify"): the encoder and decoder work at
1/2, 1/4 and 1/8 of the input resolution, and full resolution is recovered by a transposed
convolution whose output is concatenated with the input intensities and passed through 1x1
convolutions. On a CPU, 3x3x3 convolutions at full resolution cost most of a classic U-Net's
training time (their weight gradients especially); this layout keeps the receptive field of a
three-level U-Net (about 50 voxels) at a fraction of the cost.

Batch normalisation (not instance normalisation) is used on purpose: in eval mode it is a
fixed affine map, so the network is translation-equivariant and a sliding window gives the
same answer whatever the window size. Spatial input sizes must be multiples of 8.

Tensors are ``(n, 1, z, y, x)`` float32 in, ``(n, 1, z, y, x)`` logits out.
"""

from __future__ import annotations

import torch
from torch import nn

SIZE_MULTIPLE = 8
"""Every spatial input size must be a multiple of this (three stride-2 levels)."""


def _conv(
    in_channels: int, out_channels: int, *, kernel: int = 3, stride: int = 1
) -> list[nn.Module]:
    padding = kernel // 2 if stride == 1 else 0
    return [
        nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.LeakyReLU(0.01, inplace=True),
    ]


class UNet3d(nn.Module):
    """Three-level 3D U-Net producing one logit channel per voxel.

    Args:
        features: channels at 1/2, 1/4 and 1/8 resolution.
        full_resolution_features: channels of the full-resolution 1x1 head.
    """

    def __init__(
        self,
        *,
        features: tuple[int, int, int] = (8, 24, 48),
        full_resolution_features: int = 8,
    ) -> None:
        super().__init__()
        half, quarter, eighth = features
        head = full_resolution_features
        self.features = features
        self.full_resolution_features = head
        self.down_half = nn.Sequential(*_conv(1, half, kernel=2, stride=2), *_conv(half, half))
        self.down_quarter = nn.Sequential(
            *_conv(half, quarter, kernel=2, stride=2),
            *_conv(quarter, quarter),
            *_conv(quarter, quarter),
        )
        self.down_eighth = nn.Sequential(
            *_conv(quarter, eighth, kernel=2, stride=2),
            *_conv(eighth, eighth),
            *_conv(eighth, eighth),
        )
        self.up_quarter = nn.ConvTranspose3d(eighth, quarter, 2, stride=2)
        self.decode_quarter = nn.Sequential(*_conv(2 * quarter, quarter))
        self.up_half = nn.ConvTranspose3d(quarter, half, 2, stride=2)
        self.decode_half = nn.Sequential(*_conv(2 * half, half))
        self.up_full = nn.ConvTranspose3d(half, head, 2, stride=2)
        self.head = nn.Sequential(
            nn.Conv3d(head + 1, head, 1),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(head, 1, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Map ``(n, 1, z, y, x)`` intensities in 0..1 to ``(n, 1, z, y, x)`` logits."""
        half = self.down_half(image)
        quarter = self.down_quarter(half)
        eighth = self.down_eighth(quarter)
        quarter = self.decode_quarter(torch.cat([self.up_quarter(eighth), quarter], dim=1))
        half = self.decode_half(torch.cat([self.up_half(quarter), half], dim=1))
        return self.head(torch.cat([self.up_full(half), image], dim=1))  # type: ignore[no-any-return]


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
