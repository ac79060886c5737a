"""`python -m benchmarks.accuracy`: top-1 / top-5 of any STAM artifact over a class-folder video set.

The dataset is the Kinetics-400 validation layout, DIR/<class name>/<video>: a folder's name is
matched to the model's labels (ignoring case, `_` versus space and quotes, as download scripts
differ); a model without labels takes the sorted folder order. Videos go through the runtime's
own `read_frames` + `preprocess` on worker threads while the model runs, so the number measured
is the number a deployment gets. ARTIFACT is a PyTorch checkpoint (`.pth`, torch is imported only
then), an ONNX model or a TensorRT plan. Bad videos are counted and listed, never fatal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from benchmarks.report import write_json
from runtime import load_clip, options, run_clips
from runtime.cpu import usable_cpus
from runtime.decode import list_videos
from runtime.errors import StamError, run_cli
from runtime.labels import load_labels
from runtime.limits import CLI_LIMITS, Limits
from runtime.options import RunSettings, positive_int
from runtime.pipeline import run_in_memory
from runtime.progress import progress_bar

CHECKPOINT_SUFFIXES = (".pth", ".pt")
TOP_CONFUSIONS = 10


class Classifier(Protocol):
    """What evaluation needs of a model: `runtime.backends.Model` and `TorchClassifier` both fit."""

    labels: list[str]

    @property
    def frames_trained(self) -> int: ...

    @property
    def precision(self) -> str: ...

    def run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]: ...

    def close(self) -> None: ...


class TorchClassifier:
    """A PyTorch checkpoint behind the runtime's `Model.run` interface (fp32, CPU)."""

    precision = "fp32"

    def __init__(self, path: str | Path, labels: Sequence[str] | None = None):
        import torch

        from export.checkpoint import load_checkpoint_with_labels

        self._torch = torch
        self.model, stored_labels = load_checkpoint_with_labels(path)
        self.path = str(path)
        self.labels = list(labels or stored_labels or [])

    @property
    def frames_trained(self) -> int:
        return self.model.config.frames_trained

    def run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(np.ascontiguousarray(frames))).numpy()

    def close(self) -> None:
        """Nothing to release: the weights are ordinary tensors."""


def open_classifier(path: str | Path, labels: Sequence[str] | None = None, **open_options: Any) -> Classifier:
    """`.pth`/`.pt` through export.checkpoint, anything else through `runtime.open_model(path, **open_options)`
    (e.g. backend="openvino", precision="bf16").

    `labels` replaces the artifact's own; a checkpoint carries none, so a 400-class one gets the
    packaged Kinetics-400 list in the official order.
    """
    if Path(path).suffix.lower() in CHECKPOINT_SUFFIXES:
        checkpoint = TorchClassifier(path, labels)
        if not checkpoint.labels and checkpoint.model.config.num_classes == 400:
            checkpoint.labels = load_labels("kinetics400")
        return checkpoint
    from runtime import open_model

    model = open_model(path, **open_options)
    if labels is not None:
        model.labels = list(labels)
    return model


# --- the dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    path: Path
    target: int  # index into the model's outputs


def normalize_name(name: str) -> str:
    """Folder names and label names compared loosely: `passing_American_football_(in_game)` matches
    `passing American football (in game)`."""
    return " ".join(name.replace("_", " ").replace('"', "").replace("'", "").lower().split())


def discover(val_dir: str | Path, labels: Sequence[str]) -> tuple[list[Sample], list[str]]:
    """Samples of every class folder, and the class names by output index.

    Folders are matched to `labels` by name; without labels, folder i (sorted) is output i.
    A folder whose name is not a label is an error: scoring it against nothing would be wrong.
    """
    root = Path(val_dir)
    if not root.is_dir():
        raise StamError(f"{root}: not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and list_videos(p))
    if not folders:
        raise StamError(f"{root}: no class folders with videos (expected DIR/<class>/<video>)")
    names = list(labels) if labels else [folder.name for folder in folders]
    index = {normalize_name(name): i for i, name in enumerate(names)}
    unknown = [folder.name for folder in folders if normalize_name(folder.name) not in index]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise StamError(f"{root}: {len(unknown)} folders match no model label ({shown}); pass --labels")
    samples = [Sample(path, index[normalize_name(folder.name)]) for folder in folders for path in list_videos(folder)]
    return samples, names


def spread(samples: Sequence[Sample], limit: int | None) -> list[Sample]:
    """At most `limit` samples taken round-robin over the classes, so a quick run sees all of them."""
    if limit is None or limit >= len(samples):
        return list(samples)
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.target, []).append(sample)
    queues = [iter(group) for group in by_class.values()]
    chosen: list[Sample] = []
    while len(chosen) < limit:
        chosen.extend(s for s in (next(q, None) for q in queues) if s is not None)
    return chosen[:limit]


# --- scoring -------------------------------------------------------------------------------------


@dataclass
class Score:
    """Top-k accuracy of (N, C) logits against N targets, per class and the most confused pairs."""

    videos: int
    top1: float
    top5: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusions: list[dict[str, object]] = field(default_factory=list)


def score(logits: NDArray[np.float32], targets: NDArray[np.int64], names: Sequence[str]) -> Score:
    """Accuracies in [0, 1]; top-5 is top-min(5, C)."""
    targets = np.asarray(targets)
    if len(targets) == 0:
        return Score(0, float("nan"), float("nan"))
    order = np.argsort(-logits, axis=1, kind="stable")
    predicted = order[:, 0]
    hit5 = (order[:, : min(5, logits.shape[1])] == targets[:, None]).any(axis=1)
    per_class = {
        names[c]: {"videos": int(mask.sum()), "top1": float((predicted[mask] == c).mean())}
        for c in sorted(set(targets.tolist()))
        if (mask := targets == c).any()
    }
    pairs = Counter((int(t), int(p)) for t, p in zip(targets, predicted) if t != p)
    confusions = [
        {"true": _name(names, t), "predicted": _name(names, p), "count": n}
        for (t, p), n in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:TOP_CONFUSIONS]
    ]
    return Score(len(targets), float((predicted == targets).mean()), float(hit5.mean()), per_class, confusions)


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"#{index}"


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    frames: int
    sampling: str = "uniform"
    batch_size: int = 8
    workers: int = 2
    reverse: bool = False  # feed the frames in reverse order: a model that uses time must suffer


@dataclass
class Evaluation:
    """Everything one run measured; `logits` and `targets` stay out of the JSON."""

    artifact: str
    precision: str
    options: Options
    score: Score
    failures: list[dict[str, str]]
    sampling_notes: list[str]
    seconds: float
    logits: NDArray[np.float32]
    targets: NDArray[np.int64]

    def to_dict(self) -> dict[str, object]:
        return {
            "artifact": self.artifact,
            "precision": self.precision,
            **asdict(self.options),
            **asdict(self.score),
            "failed": len(self.failures),
            "failures": self.failures,
            "sampling_notes": len(self.sampling_notes),
            "seconds": round(self.seconds, 2),
            "videos_per_second": round(self.score.videos / self.seconds, 2) if self.seconds > 0 else None,
        }


def predict_clips(
    model: Classifier, clips: Sequence[NDArray[np.float32]], batch_size: int, reverse: bool = False
) -> NDArray[np.float32]:
    """(N, C) logits of already preprocessed clips, through the runtime's loop (what the gates reuse)."""
    return run_in_memory(model, [clip[::-1] if reverse else clip for clip in clips], batch_size)


def evaluate(
    model: Classifier,
    samples: Sequence[Sample],
    names: Sequence[str],
    options: Options,
    artifact: str = "",
    progress: bool = False,
    limits: Limits = CLI_LIMITS,
) -> Evaluation:
    """Decode on `options.workers` threads while the model runs full batches; score what decoded."""
    start = time.perf_counter()
    load = lambda sample: load_clip(sample.path, options.frames, options.sampling, limits=limits)  # noqa: E731
    reverse = (lambda clip: clip[::-1]) if options.reverse else None
    logits, targets, failures = [], [], []
    notes: list[str] = []  # videos sampled differently from the mode (e.g. shorter than the reference's 10 s)
    outcomes = run_clips(model, samples, load, batch_size=options.batch_size, workers=options.workers, prepare=reverse)
    with progress_bar(len(samples), unit="video", desc="accuracy", enabled=progress) as bar:
        for outcome in outcomes:
            sample = outcome.item
            if outcome.logits is None:  # the video failed: `error` says why
                failures.append({"path": str(sample.path), "error": str(outcome.error)})
            else:
                logits.append(outcome.logits)
                targets.append(sample.target)
                notes += [f"{sample.path}: {note}" for note in outcome.notes]
            bar.update()
    stacked = np.stack(logits) if logits else np.zeros((0, max(1, len(names))), dtype=np.float32)
    result = score(stacked, np.array(targets, dtype=np.int64), names)
    seconds = time.perf_counter() - start
    return Evaluation(artifact, model.precision, options, result, failures, notes, seconds, stacked, np.array(targets))


# --- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.split("\n")[0])
    options.add_model(parser, "model.pth (PyTorch checkpoint), model.onnx, or model.plan")
    parser.add_argument("--val-dir", required=True, help="dataset root: VAL_DIR/<class name>/<video>")
    options.add_frames(parser, "frames per video")
    options.add_sampling(parser)
    options.add_batch_size(parser)
    options.add_backend(parser)
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=min(4, usable_cpus()),
        help="decode threads (default: min(4, CPUs))",
    )
    parser.add_argument("--limit", type=positive_int, help="evaluate at most N videos, spread over the classes")
    parser.add_argument("--labels", help="label list (packaged name or file) replacing the artifact's own")
    parser.add_argument("--reverse-frames", action="store_true", help="diagnostic: feed each clip backwards")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    options.add_limits(parser, CLI_LIMITS)
    return parser


def render(evaluation: Evaluation, names: Sequence[str]) -> str:
    """The human-readable report: totals, per-class accuracy, most confused pairs, failures."""
    s, o = evaluation.score, evaluation.options
    lines = [
        f"{evaluation.artifact} ({evaluation.precision}), {o.frames} frames, {o.sampling} sampling"
        + (", frames reversed" if o.reverse else ""),
        f"videos {s.videos}, failed {len(evaluation.failures)}; top-1 {s.top1:.2%}, top-5 {s.top5:.2%} "
        f"({evaluation.seconds:.1f} s)",
    ]
    if evaluation.sampling_notes:
        lines.append(
            f"{len(evaluation.sampling_notes)} videos sampled differently from {o.sampling} "
            f"(e.g. {evaluation.sampling_notes[0]})"
        )
    width = max((len(name) for name in s.per_class), default=5)
    lines += ["", f"{'class':<{width}}  videos   top-1"]
    lines += [f"{name:<{width}}  {row['videos']:>6}  {row['top1']:>6.1%}" for name, row in s.per_class.items()]
    if s.confusions:
        lines += ["", "most confused (true -> predicted: videos)"]
        lines += [f"  {c['true']} -> {c['predicted']}: {c['count']}" for c in s.confusions]
    if evaluation.failures:
        lines += ["", "failed videos"] + [f"  {f['path']}: {f['error']}" for f in evaluation.failures]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    labels = load_labels(args.labels) if args.labels else None
    model = open_classifier(settings.model, labels, **open_options(settings))
    try:
        samples, names = discover(args.val_dir, model.labels)
        frames = settings.frames or model.frames_trained
        chosen = Options(frames, settings.sampling, settings.batch_size, args.workers, args.reverse_frames)
        evaluation = evaluate(
            model,
            spread(samples, args.limit),
            names,
            chosen,
            settings.model,
            progress=not args.quiet,
            limits=settings.limits,
        )
    finally:
        model.close()
    print(render(evaluation, names))
    if args.json is not None:
        write_json(evaluation.to_dict(), args.json, required=("artifact", "precision", "top1", "top5"))
    return 0


def open_options(settings: RunSettings) -> dict[str, str]:
    """`open_model`'s backend and precision; a checkpoint runs on PyTorch, so it takes only the defaults."""
    chosen = {"backend": settings.backend, "precision": settings.precision}
    if Path(settings.model).suffix.lower() not in CHECKPOINT_SUFFIXES:
        return chosen
    if chosen != {"backend": "auto", "precision": "fp32"}:
        raise StamError(
            f"{settings.model}: a checkpoint runs on PyTorch (fp32); --backend/--precision apply to artifacts"
        )
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
