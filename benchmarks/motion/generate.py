"""The motion dataset: deterministic H.264 videos of a textured object moving on a noisy background.

`python -m benchmarks.motion.generate --out DIR --per-class N --seed S` writes the Kinetics folder
layout, DIR/<class>/<id>.mp4. With `--long SEGMENTS` it writes one long video instead,
DIR/long_s<seed>.mp4, of SEGMENTS segments of different classes, each its own shot (a new
background, object and path), and the segment boundaries beside it in long_s<seed>.segments.json:
the ground truth of a timeline. Every class draws object size, position and orientation from the
same ranges, so any single frame could belong to any class: only the change over time tells them
apart, and playing a clip backwards turns it into its partner class (`REVERSED`). Sizes, frame
rates and lengths vary (portrait and odd sizes included) so that the runtime's sampling and
preprocessing are exercised, not just the model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from runtime.errors import StamError, run_cli

# Sorted, so that sorted folder order (the fallback label order) is the label order.
CLASSES = (
    "grow",
    "move_down",
    "move_left",
    "move_right",
    "move_up",
    "rotate_ccw",
    "rotate_cw",
    "shrink",
    "still",
)
_PAIRS = (("move_left", "move_right"), ("move_up", "move_down"), ("rotate_cw", "rotate_ccw"), ("grow", "shrink"))
REVERSED = {**{a: b for a, b in _PAIRS}, **{b: a for a, b in _PAIRS}, "still": "still"}
"""The class a clip becomes when its frames play in reverse order."""
MIRRORED_X = {
    **{c: c for c in CLASSES},
    "move_left": "move_right",
    "move_right": "move_left",
    "rotate_cw": "rotate_ccw",
    "rotate_ccw": "rotate_cw",
}
"""The class a clip becomes when flipped left to right."""
MIRRORED_Y = {
    **MIRRORED_X,
    "move_left": "move_left",
    "move_right": "move_right",
    "move_up": "move_down",
    "move_down": "move_up",
}
"""The class a clip becomes when flipped top to bottom."""

_X264_OPTIONS = {"preset": "veryfast", "crf": "23", "threads": "1", "x264-params": "rc-lookahead=0"}
VISIBLE = 0.42  # half-extent, in units of the short side, that survives resize-256 + center-crop-224 (0.4375)
_TEXTURE = 48  # side of the object's texture map


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video; `seed` drives its content."""

    label: str
    index: int
    width: int
    height: int
    fps: int
    num_frames: int
    seed: int

    @property
    def name(self) -> str:
        return f"s{self.seed}_{self.index:04d}.mp4"


@dataclass(frozen=True)
class Motion:
    """Object state at the first and last frame (pixels, radians); frames in between interpolate."""

    start: tuple[float, float]
    end: tuple[float, float]
    radius: tuple[float, float]
    angle: tuple[float, float]

    def at(self, progress: float) -> tuple[float, float, float, float]:
        """(x, y, radius, angle) at `progress` in [0, 1]; radius interpolates geometrically."""
        x = self.start[0] + progress * (self.end[0] - self.start[0])
        y = self.start[1] + progress * (self.end[1] - self.start[1])
        radius = self.radius[0] * (self.radius[1] / self.radius[0]) ** progress
        return x, y, radius, self.angle[0] + progress * (self.angle[1] - self.angle[0])


def plan_dataset(per_class: int, seed: int, max_side: int = 320, max_seconds: float = 4.0) -> list[VideoSpec]:
    """The specs of `per_class` videos of every class, a pure function of the arguments."""
    if per_class < 1:
        raise StamError(f"--per-class must be at least 1, got {per_class}")
    if not 160 <= max_side <= 1920:
        raise StamError(f"--max-side must be in 160..1920, got {max_side}")
    if not 1.5 <= max_seconds <= 60:
        raise StamError(f"--max-seconds must be in 1.5..60, got {max_seconds}")
    specs = []
    for class_index, label in enumerate(CLASSES):
        for index in range(per_class):
            rng = np.random.default_rng([seed, class_index, index])
            width, height = _frame_size(rng, max_side)
            fps = int(rng.integers(15, 31))
            seconds = rng.uniform(1.5, max_seconds)
            specs.append(VideoSpec(label, index, width, height, fps, max(8, round(fps * seconds)), seed))
    return specs


def _frame_size(rng: np.random.Generator, max_side: int) -> tuple[int, int]:
    """Landscape 4:3..16:9 mostly, a quarter portrait; even sides mostly, an odd one sometimes."""
    long_side = int(rng.integers(80, max_side // 2 + 1)) * 2
    short_side = max(45, int(long_side * rng.uniform(0.28, 0.4))) * 2 + int(rng.random() < 0.15)
    return (short_side, long_side) if rng.random() < 0.25 else (long_side, short_side)


def draw_motion(label: str, width: int, height: int, rng: np.random.Generator) -> Motion:
    """The object's path for `label`; all classes share the ranges of size, position and angle."""
    side = min(width, height)
    if label in ("grow", "shrink"):
        small = rng.uniform(0.08, 0.11) * side
        radius = (small, small * rng.uniform(1.8, 2.2))
        radius = radius if label == "grow" else radius[::-1]
    else:
        radius = (rng.uniform(0.11, 0.19) * side,) * 2
    bound = VISIBLE * side - max(radius)  # the center's reach from the frame center
    center = np.array([width / 2, height / 2]) + rng.uniform(-bound, bound, size=2)
    start, end = center.copy(), center.copy()
    axis = {"move_left": 0, "move_right": 0, "move_up": 1, "move_down": 1}.get(label)
    if axis is not None:
        distance = rng.uniform(0.28, 0.42) * side
        low = rng.uniform(-bound, bound - distance) + (width, height)[axis] / 2
        forward = label in ("move_right", "move_down")  # image y grows downwards
        start[axis], end[axis] = (low, low + distance) if forward else (low + distance, low)
    angle = rng.uniform(0, 2 * math.pi)
    turn = {"rotate_cw": 1.0, "rotate_ccw": -1.0}.get(label, 0.0) * math.radians(rng.uniform(200, 300))
    return Motion(tuple(start), tuple(end), radius, (angle, angle + turn))


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, amplitude: float) -> np.ndarray:
    """Coloured value noise: random (cells x cells) colours upsampled bilinearly, float32 (H, W, 3)."""
    coarse = rng.uniform(-amplitude, amplitude, size=(cells, cells, 3)).astype(np.float32)
    channels = [
        Image.fromarray(coarse[..., c], mode="F").resize((width, height), Image.Resampling.BILINEAR) for c in range(3)
    ]
    return np.stack([np.asarray(channel) for channel in channels], axis=-1)


class ObjectSprite:
    """A textured disc with a border and a bold hand, so that its position, size and angle all show."""

    def __init__(self, rng: np.random.Generator):
        base = rng.permutation([rng.uniform(200, 250), rng.uniform(20, 140), rng.uniform(0, 40)])  # saturated
        self.texture = np.clip(base + smooth_noise(rng, _TEXTURE, _TEXTURE, 5, 45), 0, 255).astype(np.uint8)
        self.hand = np.where(base > 128, 20, 235).astype(np.uint8)
        self.border = (255 - self.hand).astype(np.uint8)

    def paste(self, frame: np.ndarray, x: float, y: float, radius: float, angle: float) -> None:
        """Draw in place, nearest-neighbour, by mapping each covered pixel back into the disc."""
        height, width = frame.shape[:2]
        top, bottom = max(0, int(y - radius)), min(height, int(y + radius) + 2)
        left, right = max(0, int(x - radius)), min(width, int(x + radius) + 2)
        if top >= bottom or left >= right:
            return
        dy = (np.arange(top, bottom, dtype=np.float32)[:, None] - y) / radius
        dx = (np.arange(left, right, dtype=np.float32)[None, :] - x) / radius
        u = math.cos(angle) * dx + math.sin(angle) * dy  # the disc's own axes
        v = -math.sin(angle) * dx + math.cos(angle) * dy
        rho2 = u * u + v * v
        columns = np.clip(((u + 1) * 0.5 * (_TEXTURE - 1)).round().astype(np.intp), 0, _TEXTURE - 1)
        rows = np.clip(((v + 1) * 0.5 * (_TEXTURE - 1)).round().astype(np.intp), 0, _TEXTURE - 1)
        patch = self.texture[rows, columns]
        patch[(np.abs(v) < 0.16) & (u > 0) & (u < 0.9)] = self.hand
        patch[rho2 > 0.78] = self.border
        region = frame[top:bottom, left:right]
        inside = rho2 <= 1.0
        region[inside] = patch[inside]


def content_rng(spec: VideoSpec) -> np.random.Generator:
    """The random stream of one video's content; its first draw is the motion (see `spec_motion`)."""
    return np.random.default_rng([spec.seed, CLASSES.index(spec.label), spec.index, 1])


def spec_motion(spec: VideoSpec) -> Motion:
    """The object's path in the video `render(spec)` draws: ground truth per frame, for training."""
    return draw_motion(spec.label, spec.width, spec.height, content_rng(spec))


def render(spec: VideoSpec) -> np.ndarray:
    """The frames of one video, (N, H, W, 3) uint8 RGB."""
    rng = content_rng(spec)
    motion = draw_motion(spec.label, spec.width, spec.height, rng)
    sprite = ObjectSprite(rng)
    shape = (spec.height, spec.width)
    grain = rng.integers(-10, 11, size=(*shape, 1))  # static fine texture
    # Greyish and low in contrast next to the saturated object: the task is about time, not finding it.
    background = rng.uniform(90, 160) + smooth_noise(rng, *shape, 6, 25) + smooth_noise(rng, *shape, 24, 12)
    background = np.clip(background + grain, 0, 255).astype(np.int16)
    frames = np.empty((spec.num_frames, *shape, 3), dtype=np.uint8)
    jitter = rng.normal(0, 0.004 * min(shape), size=(spec.num_frames, 2))  # a hand-held camera
    for i in range(spec.num_frames):
        noise = rng.integers(-5, 6, size=(*shape, 1), dtype=np.int16)  # sensor noise
        frame = np.clip(background + noise, 0, 255).astype(np.uint8)
        x, y, radius, angle = motion.at(i / (spec.num_frames - 1))
        sprite.paste(frame, x + jitter[i, 0], y + jitter[i, 1], radius, angle)
        frames[i] = frame
    return frames


def write_video(frames: np.ndarray, path: str | Path, fps: int) -> Path:
    """H.264 in MP4 (yuv420p; yuv444p when a side is odd, which 4:2:0 cannot hold).

    Single-threaded and without x264's lookahead (`rc-lookahead=0`, which also turns off mb-tree):
    with it, the bundled x264 writes different bytes from run to run at some frame sizes.
    """
    path = Path(path)
    height, width = frames.shape[1:3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options=_X264_OPTIONS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def generate(
    out: str | Path,
    per_class: int,
    seed: int,
    *,
    max_side: int = 320,
    max_seconds: float = 4.0,
    workers: int = 2,
) -> list[Path]:
    """Write the dataset under `out` (created if missing) and return the video paths in plan order."""
    out = Path(out)
    specs = plan_dataset(per_class, seed, max_side, max_seconds)
    try:
        for label in CLASSES:
            (out / label).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StamError(f"{out}: cannot create the dataset folders ({error.strerror})") from None

    def make(spec: VideoSpec) -> Path:
        return write_video(render(spec), out / spec.label / spec.name, spec.fps)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # PyAV and numpy release the GIL
        return list(pool.map(make, specs))


@dataclass(frozen=True)
class Segment:
    """One shot of a long video: its class and where it lies, in seconds and in frames."""

    label: str
    start: float
    end: float
    first_frame: int
    num_frames: int


LONG_SEED_OFFSET = 7919  # long videos draw their shots away from the per-class videos of the same seed


def plan_long_video(
    segments: int,
    seed: int,
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 15,
    seconds: tuple[float, float] = (2.8, 3.6),
) -> list[VideoSpec]:
    """The shots of one long video, a pure function of the arguments.

    Classes follow shuffled rounds of all classes with no class twice in a row, so every boundary
    changes the class; each shot lasts `seconds` (uniform in the range), and its object's motion
    spans the whole shot, as in the per-class videos the model trained on.
    """
    if segments < 1:
        raise StamError(f"--long must be at least 1 segment, got {segments}")
    if not 0.5 <= seconds[0] <= seconds[1] <= 600:
        raise StamError(f"segment seconds must satisfy 0.5 <= low <= high <= 600, got {seconds}")
    rng = np.random.default_rng([seed, LONG_SEED_OFFSET])
    labels: list[str] = []
    while len(labels) < segments:
        round_ = [str(label) for label in rng.permutation(CLASSES)]
        if labels and round_[0] == labels[-1]:
            round_.append(round_.pop(0))
        labels.extend(round_)
    return [
        VideoSpec(label, LONG_SEED_OFFSET + i, width, height, fps, max(8, round(fps * rng.uniform(*seconds))), seed)
        for i, label in enumerate(labels[:segments])
    ]


def segments_of(specs: Sequence[VideoSpec]) -> list[Segment]:
    """Where each shot lies in the concatenated video."""
    result, first = [], 0
    for spec in specs:
        result.append(
            Segment(spec.label, first / spec.fps, (first + spec.num_frames) / spec.fps, first, spec.num_frames)
        )
        first += spec.num_frames
    return result


def write_long_video(specs: Sequence[VideoSpec], path: str | Path) -> list[Segment]:
    """Encode the shots one after another into one H.264 stream; memory holds one shot at a time.

    Writes the boundaries to `NAME.segments.json` beside the video and returns them.
    """
    path = Path(path)
    if len({(spec.width, spec.height, spec.fps) for spec in specs}) != 1:
        raise StamError("the shots of one long video must share frame size and rate")
    first = specs[0]
    try:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(first.fps), options=_X264_OPTIONS)
            stream.width, stream.height = first.width, first.height
            stream.pix_fmt = "yuv420p" if first.width % 2 == 0 and first.height % 2 == 0 else "yuv444p"
            for spec in specs:
                for frame in render(spec):
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
    except OSError as error:
        raise StamError(f"{path}: cannot write the video ({error.strerror})") from None
    segments = segments_of(specs)
    segments_path(path).write_text(json.dumps([asdict(segment) for segment in segments], indent=1) + "\n")
    return segments


def segments_path(video: str | Path) -> Path:
    """`NAME.mp4` -> `NAME.segments.json`."""
    video = Path(video)
    return video.with_name(f"{video.stem}.segments.json")


def read_segments(video: str | Path) -> list[Segment]:
    return [Segment(**entry) for entry in json.loads(segments_path(video).read_text())]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.motion.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="dataset root; videos go to OUT/<class>/<id>.mp4")
    parser.add_argument("--per-class", type=int, default=40, help="videos per class (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0; the model trained on 0)")
    parser.add_argument("--max-side", type=int, default=320, help="longest frame side, pixels (default 320)")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="longest video, seconds (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="encoding threads (default 2)")
    long = parser.add_argument_group("long video (one file of shots of different classes)")
    long.add_argument("--long", type=int, metavar="SEGMENTS", help="write OUT/long_s<seed>.mp4 of SEGMENTS shots")
    long.add_argument(
        "--segment-seconds",
        type=float,
        nargs=2,
        default=(2.8, 3.6),
        metavar=("LOW", "HIGH"),
        help="length range of a shot (default 2.8 3.6: one motion per shot, as long as the training clips)",
    )
    long.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(320, 240),
        metavar=("WIDTH", "HEIGHT"),
        help="frame size of the long video (default 320 240)",
    )
    long.add_argument("--fps", type=int, default=15, help="frame rate of the long video (default 15)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.long is not None:
        return run_long(args, start)
    paths = generate(
        args.out, args.per_class, args.seed, max_side=args.max_side, max_seconds=args.max_seconds, workers=args.workers
    )
    print(f"wrote {len(paths)} videos ({len(CLASSES)} classes) to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def run_long(args: argparse.Namespace, start: float) -> int:
    width, height = args.size
    if not (16 <= width <= 1920 and 16 <= height <= 1920 and 1 <= args.fps <= 120):
        raise StamError(f"--size must be 16..1920 each way and --fps 1..120, got {width}x{height} at {args.fps}")
    out = Path(args.out)
    if not out.is_dir():
        raise StamError(f"{out}: no such directory")
    specs = plan_long_video(
        args.long, args.seed, width=width, height=height, fps=args.fps, seconds=tuple(args.segment_seconds)
    )
    path = out / f"long_s{args.seed}.mp4"
    segments = write_long_video(specs, path)
    print(
        f"wrote {path} ({len(segments)} segments, {segments[-1].end:.1f} s) and {segments_path(path).name} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
