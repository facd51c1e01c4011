"""Saliency-guided stroke initialisation (CLIPasso §3): where the first control point of each stroke goes.

CLS-token attention of a CLIP ViT (averaged over heads and layers) is restricted to XDoG edge pixels,
turned into a distribution by a softmax with temperature, and sampled without replacement; the other
three control points follow a small random walk.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .models import ClipEncoder

GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)
"""Luminance weights of the grey image the XDoG runs on (ITU-R 709, as skimage's rgb2gray)."""

WALK_STEP = 0.05
"""Random-walk step of the later control points, as a fraction of the canvas (uniform ±half of it)."""


def clip_attention(encoder: ClipEncoder, image: torch.Tensor) -> torch.Tensor:
    """CLS-to-patch attention of a CLIP ViT on ``image`` ``[3, H, W]`` in [0, 1], as a map ``[H, W]`` in [0, 1]."""
    vit = encoder.visual
    blocks = list(vit.transformer.resblocks)
    inputs: list[torch.Tensor] = []
    hooks = [block.ln_1.register_forward_hook(lambda _m, _i, out: inputs.append(out)) for block in blocks]
    size = encoder.image_size
    batch = F.interpolate(image[None], size=(size, size), mode="bicubic", align_corners=False) \
        if image.shape[-1] != size or image.shape[-2] != size else image[None]
    try:
        with torch.no_grad(), encoder.autocast():
            vit(encoder.normalize(batch))
    finally:
        for hook in hooks:
            hook.remove()
    batch_first = getattr(vit.transformer, "batch_first", True)
    with torch.no_grad(), encoder.autocast():
        per_layer = [
            _cls_attention(block.attn, tokens if batch_first else tokens.transpose(0, 1)).float()
            for block, tokens in zip(blocks, inputs)
        ]
    grid_h, grid_w = vit.grid_size
    cls_map = torch.stack(per_layer).mean(dim=0)[0, -grid_h * grid_w:].reshape(1, 1, grid_h, grid_w)
    full = F.interpolate(cls_map.float(), size=image.shape[-2:], mode="bicubic", align_corners=False)[0, 0]
    return _min_max(full)


def _cls_attention(attention: torch.nn.MultiheadAttention, tokens: torch.Tensor) -> torch.Tensor:
    """Head-averaged attention probabilities of the CLS token to every token: ``[B, N]`` from ``[B, N, D]``."""
    dim, heads = attention.embed_dim, attention.num_heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    q = F.linear(tokens, weight[:dim], None if bias is None else bias[:dim])
    k = F.linear(tokens, weight[dim:2 * dim], None if bias is None else bias[dim:2 * dim])
    batch, count, _ = tokens.shape
    q = q.reshape(batch, count, heads, dim // heads).transpose(1, 2)
    k = k.reshape(batch, count, heads, dim // heads).transpose(1, 2)
    probs = torch.softmax(q[:, :, :1] @ k.transpose(-1, -2) / (dim // heads) ** 0.5, dim=-1)
    return probs.clamp_min(0).mean(dim=1)[:, 0]


def xdog_edges(image: torch.Tensor) -> torch.Tensor:
    """Binary XDoG map ``[H, W]`` of an image ``[3, H, W]``: 0 on edge pixels, 1 elsewhere (CLIPasso's settings)."""
    weights = torch.tensor(GRAY_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    gray = (image * weights).sum(dim=0)
    difference = gaussian_blur(gray, 0.8) - 0.98 * gaussian_blur(gray, 8.0)
    response = torch.where(difference < -0.1, torch.ones_like(difference), 1.0 + torch.tanh(200.0 * difference))
    if float(response.max() - response.min()) <= 0.0:
        return torch.ones_like(response)
    response = _min_max(response)
    return (response >= otsu_threshold(response)).to(image.dtype)


def gaussian_blur(image: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian blur of ``[H, W]`` with edge-replicating borders and a kernel of radius ⌊truncate·σ + ½⌋."""
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image[None, None], (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))[0, 0]


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the bin centre that maximises the between-class variance."""
    flat = values.detach().flatten().double().cpu()
    low, high = float(flat.min()), float(flat.max())
    if high <= low:
        return low
    counts = torch.histc(flat, bins=bins, min=low, max=high)
    centres = low + (torch.arange(bins, dtype=torch.float64) + 0.5) * (high - low) / bins
    weight_low = torch.cumsum(counts, 0)
    weight_high = torch.cumsum(counts.flip(0), 0).flip(0)
    mean_low = torch.cumsum(counts * centres, 0) / weight_low.clamp_min(1e-12)
    mean_high = (torch.cumsum((counts * centres).flip(0), 0) / weight_high.clamp_min(1e-12)).flip(0)
    between = weight_low[:-1] * weight_high[1:] * (mean_low[:-1] - mean_high[1:]) ** 2
    return float(centres[int(torch.argmax(between))])


def sampling_distribution(attention: torch.Tensor, edges: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities ``[H, W]`` of placing a first point: softmax(attention·(1 − edges) / T) over its non-zero pixels."""
    masked = attention * (1.0 - edges)
    support = masked > 0
    if not bool(support.any()):
        masked, support = attention, torch.ones_like(attention, dtype=torch.bool)
    logits = torch.where(support, masked / temperature, torch.full_like(masked, float("-inf")))
    return torch.softmax(logits.flatten().double(), dim=0).reshape(attention.shape)


INK_REACH = 4.0
"""How far existing ink weighs the placement of new strokes down: the σ of its blur, in canvas pixels."""


def uncovered(probabilities: torch.Tensor | None, ink: torch.Tensor) -> torch.Tensor:
    """Probabilities ``[H, W]`` of placing a first point, weighted down where ``ink`` ``[H, W]`` (0 … 1) lies.

    The ink is blurred (σ = :data:`INK_REACH`) and scaled to [0, 1]; each pixel's probability is multiplied by
    one minus that, so the most inked pixels get none and blank ones keep theirs. ``None`` weighs a uniform
    distribution. Where the ink leaves nothing, the weights are left out.
    """
    base = torch.ones_like(ink, dtype=torch.float64) if probabilities is None else probabilities.double()
    spread = gaussian_blur(ink.double(), INK_REACH)
    weighted = base * (1.0 - spread / spread.max()) if float(spread.max()) > 0 else base
    if float(weighted.sum()) <= 0:
        weighted = base
    return weighted / weighted.sum()


def initial_strokes(probabilities: torch.Tensor | None, strokes: int, seed: int, size: int,
                    inside: torch.Tensor | None = None) -> torch.Tensor:
    """Control points ``[strokes, 4, 2]`` (canvas pixels): sampled first points, then a ±2.5 % random walk.

    With ``probabilities`` ``[H, W]`` (H = W = size) first points are distinct salient pixel centres; with
    ``None`` they are uniform over the canvas. With ``inside`` ``[H, W]`` (bool, a mask) they are pixel
    centres inside it only. The same seed always gives the same strokes.
    """
    rng = np.random.default_rng(seed)
    if inside is not None:
        first = _first_points_inside(probabilities, inside, strokes, rng, size)
    elif probabilities is None:
        first = rng.random((strokes, 2))
    else:
        p = probabilities.detach().flatten().double().cpu().numpy()
        p = p / p.sum()
        available = int(np.count_nonzero(p))
        if available < strokes:  # fewer salient pixels than strokes: spread the rest uniformly
            p = np.full_like(p, 1.0 / p.size)
        index = rng.choice(p.size, size=strokes, replace=False, p=p)
        rows, cols = np.divmod(index, size)
        first = np.stack([(cols + 0.5) / size, (rows + 0.5) / size], axis=-1)
    steps = WALK_STEP * (rng.random((strokes, 3, 2)) - 0.5)
    points = np.concatenate([first[:, None], first[:, None] + np.cumsum(steps, axis=1)], axis=1)
    return torch.from_numpy(points * size).float()


def _first_points_inside(probabilities: torch.Tensor | None, inside: torch.Tensor, strokes: int,
                         rng: np.random.Generator, size: int) -> np.ndarray:
    """First points ``[strokes, 2]`` (fractions of the canvas) at pixel centres inside a mask, by saliency if given."""
    allowed = inside.detach().flatten().cpu().numpy().astype(np.float64)
    p = allowed if probabilities is None else probabilities.detach().flatten().double().cpu().numpy() * allowed
    if np.count_nonzero(p) < strokes:  # too few salient pixels inside: spread over the whole inside
        p = allowed
    index = rng.choice(p.size, size=strokes, replace=np.count_nonzero(p) < strokes, p=p / p.sum())
    rows, cols = np.divmod(index, size)
    return np.stack([(cols + 0.5) / size, (rows + 0.5) / size], axis=-1)


def _min_max(values: torch.Tensor) -> torch.Tensor:
    low, high = values.min(), values.max()
    return (values - low) / (high - low).clamp_min(1e-12)
