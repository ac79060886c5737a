"""runtime.preprocess equals torchvision's PIL path (Resize(256), CenterCrop(224), ToTensor) bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from runtime.contract import INPUT_SIZE, RESIZE_SHORT
from runtime.preprocess import center_crop, preprocess, resized_size


def torchvision_reference(frame: np.ndarray) -> np.ndarray:
    """One frame the way torchvision's Compose([Resize(256), CenterCrop(224), ToTensor()]) treats a PIL image.

    Written from torchvision's documented rules, independently of runtime.preprocess.
    """
    image = Image.fromarray(frame)
    width, height = image.size
    if width <= height:
        size = (256, int(256 * height / width))
    else:
        size = (int(256 * width / height), 256)
    image = image.resize(size, Image.BILINEAR)
    image = pil_center_crop(image, 224)
    return np.asarray(image).transpose(2, 0, 1).astype(np.float32) / np.float32(255)


def pil_center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision.transforms.functional.center_crop on a PIL image (pads with zeros when too small)."""
    width, height = image.size
    if width < size or height < size:
        left = (size - width) // 2 if size > width else 0
        top = (size - height) // 2 if size > height else 0
        right = (size - width + 1) // 2 if size > width else 0
        bottom = (size - height + 1) // 2 if size > height else 0
        image = ImageOps.expand(image, border=(left, top, right, bottom), fill=0)
        width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def random_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Noise over a gradient: every pixel matters to the resampling filter."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width, dtype=np.float32)[None, None, :, None]
    noise = rng.integers(0, 56, size=(num_frames, height, width, 3))
    return (ramp + noise).astype(np.uint8)


SIZES = [  # (height, width)
    (240, 320),  # landscape 4:3
    (320, 240),  # portrait
    (2, 3),  # tiny
    (3, 2),  # tiny portrait
    (1, 1),
    (257, 341),  # odd, (h - 224) / 2 = 16.5 rounds to even
    (479, 639),
    (256, 455),  # short side already 256: no resize
    (224, 224),  # upscaled square
    (1080, 1920),
]


@pytest.mark.parametrize("height, width", SIZES)
def test_matches_torchvision_exactly(height, width):
    frames = random_frames(2, height, width, seed=height * 7919 + width)
    out = preprocess(frames)
    assert out.shape == (2, 3, INPUT_SIZE, INPUT_SIZE) and out.dtype == np.float32
    expected = np.stack([torchvision_reference(frame) for frame in frames])
    assert np.abs(out - expected).max() == 0


def test_4k_frame_matches_torchvision_exactly():
    frames = random_frames(1, 2160, 3840)
    assert np.abs(preprocess(frames) - torchvision_reference(frames[0])[None]).max() == 0


def test_resize_rule_truncates_the_long_side():
    assert RESIZE_SHORT == 256
    assert resized_size(2160, 3840) == (256, 455)  # 455.11
    assert resized_size(3840, 2160) == (455, 256)
    assert resized_size(2, 3) == (256, 384)
    assert resized_size(341, 257) == (339, 256)  # 339.67
    assert resized_size(500, 500) == (256, 256)


@pytest.mark.parametrize("height, width", [(101, 150), (300, 101), (100, 100), (225, 223), (260, 301)])
def test_center_crop_pads_and_rounds_like_torchvision(height, width):
    image = random_frames(1, height, width)[0]
    expected = np.asarray(pil_center_crop(Image.fromarray(image), INPUT_SIZE))
    assert np.array_equal(center_crop(image), expected)


def test_values_are_exact_quotients_and_contiguous():
    """A 256x256 ramp is not resized; the crop keeps columns 16..239, each value v / 255 in float32."""
    frames = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, None, :, None], (1, 256, 256, 3)).copy()
    out = preprocess(frames)
    expected = np.arange(16, 240, dtype=np.float32) / np.float32(255)
    assert out.flags.c_contiguous
    assert np.array_equal(out, np.broadcast_to(expected, out.shape))


def test_scaling_equals_torch_to_tensor():
    """ToTensor divides by 255 in float32; multiplying by 1/255 would differ in the last bit for 126 values."""
    torch = pytest.importorskip("torch")
    frames = random_frames(1, 300, 400)
    resized = Image.fromarray(frames[0]).resize((341, 256), Image.BILINEAR)  # int(256 * 400 / 300) = 341
    crop = np.asarray(pil_center_crop(resized, 224)).copy()
    expected = torch.from_numpy(crop).permute(2, 0, 1).float().div(255).numpy()
    assert np.array_equal(preprocess(frames)[0], expected)


@pytest.mark.parametrize(
    "frames",
    [np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4, 4, 4), np.uint8), np.zeros((1, 4, 4, 3), np.float32)],
)
def test_wrong_input_raises(frames):
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        preprocess(frames)
