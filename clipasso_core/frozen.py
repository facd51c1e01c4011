"""Make a frozen CLIP image tower cheaper to run, without changing the function it computes.

Assumes the tower is used for inference and input gradients only (never trained): its weights are
frozen, it is in eval mode, every BatchNorm that follows a convolution is folded into that convolution
(eval-mode BatchNorm is a per-channel affine map), and its 4-D weights are in channels_last, the layout
oneDNN and cuDNN convolve fastest in. Measured on a 2-core AVX512/AMX CPU (RN101, forward + input
gradient, 5 images, one thread): folding saves ~16 % in fp32 and ~14 % in bf16; channels_last ~7 % in
fp32 and ~37 % in bf16. On CUDA it also lets cuDNN pick its fastest algorithm per shape (the loss
network sees the same few batch shapes every step) and matrix products use TF32, as cuDNN's convolutions
already do by default.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def freeze_for_inference(visual: nn.Module, device: torch.device) -> nn.Module:
    """Move ``visual`` to ``device`` in channels_last, eval mode, frozen, with its BatchNorms folded."""
    visual = visual.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    fold_batch_norms(visual)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    return visual


def fold_batch_norms(module: nn.Module) -> int:
    """Fold, in place, every eval-mode plain BatchNorm2d that directly follows a Conv2d into it; return how many.

    Pairs are ``convN``/``bnN`` attributes of one module (open_clip's ResNet stem and bottlenecks) and
    consecutive Conv2d, BatchNorm2d entries of an ``nn.Sequential`` (their downsample branches). A folded
    BatchNorm becomes ``nn.Identity``.
    """
    folded = sum(fold_batch_norms(child) for child in module.children())
    pairs: list[tuple[str, str]] = []
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        pairs += list(zip(names, names[1:]))
    pairs += [(f"conv{index}", f"bn{index}") for index in range(1, 10)]
    for conv_name, norm_name in pairs:
        conv, norm = module._modules.get(conv_name), module._modules.get(norm_name)
        if isinstance(conv, nn.Conv2d) and type(norm) is nn.BatchNorm2d and not norm.training:
            fused = fuse_conv_bn_eval(conv, norm).requires_grad_(False)
            module._modules[conv_name] = fused.to(memory_format=torch.channels_last)
            module._modules[norm_name] = nn.Identity()
            folded += 1
    return folded
