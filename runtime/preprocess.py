"""Frame preprocessing for the model: (T, H, W, 3) uint8 RGB -> (T, 3, 224, 224) float32 in [0, 1].

Bit-exact with torchvision's PIL path the reference used: Resize(256) on the shorter side with
PIL BILINEAR (antialiased), CenterCrop(224) with torchvision's offsets and zero padding, ToTensor.
No mean/std normalisation: the STAM checkpoints take [0, 1] inputs (docs/architecture.md,
"Sampling and preprocessing").
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from runtime.contract import INPUT_SIZE, RESIZE_SHORT


def resized_size(height: int, width: int, short: int = RESIZE_SHORT) -> tuple[int, int]:
    """(height, width) after torchvision's Resize(short): shorter side to `short`, longer side truncated."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def crop_box(height: int, width: int, size: int = INPUT_SIZE) -> tuple[int, int]:
    """(top, left) of torchvision's CenterCrop(size) in an image at least `size` each way.

    Python's round() halves to even, as torchvision's `int(round((h - size) / 2.0))` does.
    """
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def center_crop(image: NDArray[np.uint8], size: int = INPUT_SIZE) -> NDArray[np.uint8]:
    """torchvision's CenterCrop on an (H, W, C) array: zero-pad a side smaller than `size`, then crop."""
    height, width = image.shape[:2]
    if height < size or width < size:
        pad_h, pad_w = max(size - height, 0), max(size - width, 0)
        # torchvision pads (size - h) // 2 before and the rest after
        image = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        height, width = image.shape[:2]
    top, left = crop_box(height, width, size)
    return image[top : top + size, left : left + size]


def preprocess(frames: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Model input for one clip: (T, H, W, 3) uint8 RGB -> (T, 3, 224, 224) float32 in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected frames (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    num_frames, height, width = frames.shape[:3]
    new_height, new_width = resized_size(height, width)
    crops = np.empty((num_frames, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    for t in range(num_frames):
        resized = Image.fromarray(frames[t]).resize((new_width, new_height), Image.Resampling.BILINEAR)
        crops[t] = center_crop(np.asarray(resized))
    out = np.empty((num_frames, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    # ToTensor divides (not multiplies by 1/255): float32 division, correctly rounded
    np.divide(crops.transpose(0, 3, 1, 2), np.float32(255), out=out, dtype=np.float32)
    return out
