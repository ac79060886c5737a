"""A stam-batch job: check everything, list what is left to do, then run list -> decode -> model -> write on Ray.

Everything that can be wrong with the request (model, frames, inputs, output folder) is checked
before Ray starts, so a bad request costs no cluster time. What is left to do is the listing minus
the paths already in the output's part files, so a rerun resumes and a finished job starts no Ray.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch import cluster, resources
from batch.extra import import_ray
from batch.inputs import list_inputs
from batch.output import OutputDir
from batch.schema import ModelId
from batch.steps import ClassifyOptions, write_part
from batch.watch import POLL_S, STATUS_EVERY_S, ClassifyCounted, JobStopped, Watch, decode_counted, start_tally
from runtime import contract, open_model
from runtime.artifact import KIND_ONNX, describe
from runtime.backends import resolve_backend
from runtime.contract import DimRange, check_range
from runtime.errors import StamError, error_line
from runtime.limits import BATCH_LIMITS, Limits
from runtime.onnx_io import file_sha256

PATHS_PER_BLOCK = 4  # listing rows per decode task: small, so decoding spreads over every core...
MAX_BLOCKS = 10_000  # ...but no more tasks than this for millions of videos (scheduling overhead)
WRITE_CPUS = 0.1  # writing a part is mostly I/O
DECODE_OVERHEAD = 256 << 20  # FFmpeg and PIL working memory per decode task, beside the pixels


@dataclass
class JobConfig:
    """What `stam-batch` takes: the model, the inputs, the output folder and how to run."""

    model: str
    inputs: Sequence[str]
    out: str
    frames: int | None = None  # default: the model's trained T
    sampling: str = "uniform"
    topk: int = 5
    with_logits: bool = False
    batch_size: int = 8  # videos per model call
    actors: int = 1  # model replicas
    gpus_per_actor: float = 0.0
    cpus_per_actor: float | None = None  # default: 1 with GPUs, else a share that leaves a core to decode
    rows_per_file: int = 256  # rows per part file: what a kill can lose, at most, per writer
    address: str | None = None  # None: a local Ray on this machine; HOST:PORT, "auto" or "ray://HOST:PORT"
    num_cpus: int | None = None  # local Ray only; default all cores
    object_store_memory: int | None = None  # local Ray only; default Ray's
    providers: Sequence[str] | None = None
    verbose: bool = False
    backend: str = "auto"  # open_model's: the actors open the artifact on it
    precision: str = "fp32"
    limits: Limits = BATCH_LIMITS  # what one video may cost to decode
    stall_timeout: float = 300.0  # seconds without a video decoded, classified or written: the job ends (exit 3)
    status_every: float = STATUS_EVERY_S  # a status line this often when stderr is not a terminal


@dataclass(frozen=True)
class ModelFacts:
    """What the driver learns from the artifact without running it on a GPU."""

    id: ModelId
    frames_trained: int
    frames_range: DimRange | None
    batch_range: DimRange | None


@dataclass
class Plan:
    """A checked request: the frames to sample, the batch size, and the paths still to classify."""

    config: JobConfig
    model: ModelFacts
    frames: int
    batch_size: int
    output: OutputDir
    listed: int
    pending: list[str]


@dataclass
class Summary:
    """What a run did (this run only) and what the output folder holds in total."""

    videos: int = 0
    failures: int = 0
    parts: int = 0
    skipped: int = 0  # inputs already in the output folder
    wall_s: float = 0.0  # this run, Ray start-up included
    startup_s: float = 0.0  # ray.init
    total_rows: int = 0
    total_failures: int = 0
    parts_written: list[str] = field(default_factory=list)

    @property
    def videos_per_s(self) -> float:
        return self.videos / self.wall_s if self.wall_s > 0 else 0.0

    def render(self, out: str) -> str:
        if not self.videos:
            return (
                f"nothing to do: all {self.skipped} inputs already have results in {out} "
                f"({self.total_failures} of them errors)"
            )
        return (
            f"{self.videos} videos ({self.failures} failed) in {self.wall_s:.1f} s: "
            f"{self.videos_per_s:.2f} videos/s (Ray start-up {self.startup_s:.1f} s); "
            f"{self.skipped} were already done; {out} holds {self.total_rows} results "
            f"({self.total_failures} errors)"
        )


# --- planning (no Ray) ---------------------------------------------------------------------------


def model_facts(
    path: str, providers: Sequence[str] | None, backend: str = "auto", precision: str = "fp32"
) -> ModelFacts:
    """Check the artifact on the driver: ONNX models are opened on `backend`; plans are checked through
    their sidecar (the driver may have no GPU, e.g. a cluster's head node)."""
    info = describe(path)
    if info.kind == KIND_ONNX:
        with open_model(path, backend=backend, precision=precision, providers=providers) as model:
            ranges = model.frames_trained, model.frames_range, model.batch_range
    else:
        resolve_backend(info, backend, precision, providers)  # a plan on another backend: refused here
        ranges = info.frames_trained, info.frames_range, info.batch_range
    return ModelFacts(ModelId(Path(path).name, file_sha256(path)), *ranges)


def plan_job(config: JobConfig) -> Plan:
    """Every check that needs no Ray, then what is left to do."""
    facts = model_facts(config.model, config.providers, config.backend, config.precision)
    frames = config.frames or facts.frames_trained
    check_range("frames", frames, facts.frames_range)
    batch_size = min(config.batch_size, facts.batch_range.max) if facts.batch_range else config.batch_size
    listed = list_inputs(config.inputs)
    output = OutputDir(config.out)
    output.prepare(job_record(facts.id, frames, config))
    done = output.finished().paths
    return Plan(config, facts, frames, batch_size, output, len(listed), [p for p in listed if p not in done])


def job_record(model: ModelId, frames: int, config: JobConfig) -> dict[str, Any]:
    """The settings every row of a folder must share (`_job.json`)."""
    return {
        "model": model.as_dict(),
        "frames": frames,
        "sampling": config.sampling,
        "topk": config.topk,
        "logits": config.with_logits,
        "backend": config.backend,
        "precision": config.precision,
    }


# --- running (Ray) -------------------------------------------------------------------------------


def run_job(config: JobConfig) -> Summary:
    """Plan, then run what is left on Ray; a folder already complete starts no Ray at all."""
    plan = plan_job(config)
    summary = Summary(skipped=plan.listed - len(plan.pending))
    if plan.pending:
        run_pending(plan, summary)
    finished = plan.output.finished()
    summary.total_rows, summary.total_failures = len(finished.paths), finished.failures
    return summary


def run_pending(plan: Plan, summary: Summary) -> None:
    """Start (or join) Ray, check the job fits it, stream the pipeline to its end, and stop what this call started."""
    ray = import_ray()
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        init_ray(ray, plan.config)
    summary.startup_s = time.perf_counter() - start
    try:
        cpus_per_actor = fit_actors(ray, plan)
        tally = start_tally(ray)
        watch = Watch(
            ray, tally, len(plan.pending), plan.config.stall_timeout, plan.config.out, plan.config.status_every
        )
        try:
            consume(build_dataset(ray, plan, cpus_per_actor, tally), summary, watch)
        finally:
            watch.close()
    except ray.exceptions.RayError as error:
        if plan.config.verbose:
            raise
        raise JobStopped(
            f"the Ray job stopped ({error_line(error, last=True)}); {plan.config.out} keeps every part written "
            "so far: rerun the same command to resume (--verbose shows Ray's trace)"
        ) from None
    finally:
        if started_here:
            ray.shutdown()
    summary.wall_s = time.perf_counter() - start


def init_ray(ray, config: JobConfig) -> None:
    """A local Ray with this machine's cores, or the cluster at `address`; quiet unless verbose.

    On a cluster, this package and the runtime travel with the job (`py_modules`), so the nodes need
    only the runtime's libraries (onnxruntime or tensorrt, av, pillow), not this checkout.
    """
    options: dict[str, Any] = {
        "log_to_driver": config.verbose,
        "logging_level": logging.INFO if config.verbose else logging.ERROR,
    }
    if config.address:
        import batch
        import runtime

        cluster.probe(config.address)  # one line naming why the cluster cannot be joined, in seconds
        options.update(address=config.address, runtime_env={"py_modules": [batch, runtime]})
    else:
        options.update(
            include_dashboard=False, num_cpus=config.num_cpus, object_store_memory=config.object_store_memory
        )
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = config.address or "this machine"
        reason = cluster.version_mismatch(str(error)) or error_line(error, last=True)
        raise StamError(f"cannot start or join Ray on {where} ({reason})") from None
    configure_data_logging(ray, config.verbose)


def configure_data_logging(ray, verbose: bool) -> None:
    """Ray Data's progress bars and execution logs only with --verbose (the job shows its own progress)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = verbose
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.ERROR)
    context.print_on_execution_start = verbose


def decode_memory(plan: Plan) -> int:
    """Bytes a decode task asks Ray for: its clip twice (decoded and serialized) plus FFmpeg's working memory."""
    return 2 * plan.frames * 3 * contract.INPUT_SIZE * contract.INPUT_SIZE * 4 + DECODE_OVERHEAD


def fit_actors(ray, plan: Plan) -> float:
    """The CPUs each model actor reserves, once the job is known to fit (resources.ResourceError, exit 2,
    when it does not); one line says how the job runs."""
    config = plan.config
    nodes = resources.nodes_of(ray)
    demand = resources.Demand(config.actors, 0.0, config.gpus_per_actor, decode_memory(plan))
    where = f"the cluster at {config.address}" if config.address else "this machine"
    share = resources.choose_cpus_per_actor(nodes, demand, config.cpus_per_actor, where)
    gpus = f" and {config.gpus_per_actor:g} GPU" if config.gpus_per_actor else ""
    print(
        f"stam-batch: {len(plan.pending)} videos to classify on {resources.describe_nodes(nodes)}; "
        f"{config.actors} model actor(s) of {share:g} CPU{gpus} each, decoding on the other CPUs",
        file=sys.stderr,
        flush=True,
    )
    return share


def build_dataset(ray, plan: Plan, cpus_per_actor: float, tally):
    """list -> decode (tasks) -> classify (actor pool) -> write (tasks): a Dataset of part summaries."""
    config = plan.config
    per_block = max(PATHS_PER_BLOCK, -(-len(plan.pending) // MAX_BLOCKS))
    blocks = max(1, -(-len(plan.pending) // per_block))
    listing = ray.data.from_items([{"path": path} for path in plan.pending], override_num_blocks=blocks)
    decoded = listing.map(
        decode_counted,
        fn_kwargs={"tally": tally, "num_frames": plan.frames, "sampling": config.sampling, "limits": config.limits},
        num_cpus=resources.DECODE_CPUS,
        # The memory request keeps decoding in its own tasks (Ray would otherwise fuse it into the
        # model actors, serialising decode and inference) and bounds concurrent decodes per node.
        memory=decode_memory(plan),
    )
    classified = decoded.map_batches(
        ClassifyCounted,
        fn_constructor_args=(
            str(Path(config.model).resolve()),
            plan.model.id,
            ClassifyOptions(config.topk, config.with_logits, config.providers, config.backend, config.precision),
        ),
        fn_constructor_kwargs={"tally": tally},
        batch_size=plan.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.actors),
        num_gpus=config.gpus_per_actor or None,
        num_cpus=cpus_per_actor,
    )
    return classified.map_batches(
        write_part,
        fn_kwargs={"out": plan.output.address},
        batch_size=config.rows_per_file,
        batch_format="pyarrow",
        num_cpus=WRITE_CPUS,
    )


def consume(parts, summary: Summary, watch: Watch) -> None:
    """Drive the streaming execution (on a thread) and count what each written part holds; the watch
    looks on between parts and ends a job that stalls, stopping the execution it started."""
    results: queue.Queue = queue.Queue()
    before = set(threading.enumerate())

    def drain() -> None:
        try:
            for batch in parts.iter_batches(batch_size=None, batch_format="pyarrow"):
                results.put(batch)
            results.put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the driver's thread, which raises it
            results.put(error)

    threading.Thread(target=drain, name="stam-batch-results", daemon=True).start()
    try:
        while (batch := next_batch(results, watch)) is not None:
            videos = sum(batch.column("videos").to_pylist())
            summary.videos += videos
            summary.failures += sum(batch.column("failures").to_pylist())
            summary.parts_written.extend(batch.column("part").to_pylist())
            watch.written(videos)
    except BaseException:
        stop_executions(before)
        raise
    summary.parts = len(summary.parts_written)


def next_batch(results: queue.Queue, watch: Watch):
    """The next written-part summary (None at the end), ticking the watch while it waits."""
    while True:
        try:
            batch = results.get(timeout=POLL_S)
        except queue.Empty:
            watch.tick()
            continue
        watch.tick()
        if isinstance(batch, BaseException):
            raise batch
        return batch


def stop_executions(before: set[threading.Thread]) -> None:
    """Shut down the Ray Data executions this job started (each runs on a thread of its own), so that a
    stalled job leaves nothing running in a Ray it did not start, nor anything that reconnects later."""
    for thread in set(threading.enumerate()) - before:
        shutdown = getattr(thread, "shutdown", None)
        if type(thread).__name__ == "StreamingExecutor" and callable(shutdown):
            shutdown(force=True)


__all__ = ["JobConfig", "Summary", "run_job", "plan_job", "JobStopped", "StamError"]
