"""Triton's server process for `stam-serve`: workspace, model repository, environment, readiness, shutdown.

The server is the `tritonserver` binary and Python-backend stub that `nvidia-pytriton` ships.
PyTriton's callable API is not used for the models: it fails every request of a batch when one
fails and answers with a traceback, while Triton's Python backend gives each request its own
response (see `serve.backend`). The environment fix is ours too: the stub links against
`libpython3.X.so`, and unless `LD_LIBRARY_PATH` starts with this interpreter's `LIBDIR` it can load
the system's copy, whose version differs from this interpreter's standard library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from runtime.artifact import ArtifactInfo
from runtime.errors import MissingDependencyError, StamError
from runtime.limits import SERVER_LIMITS, Limits
from serve import config as triton_config

SERVE_EXTRA = "stam-serve needs the serve extra: pip install -e '.[serve]'"
BACKEND_SHIMS = {"tensors": "TensorModel", "video": "VideoModel"}
# Request/response objects Triton's gRPC front end keeps for reuse. A reused request keeps the
# capacity of the largest upload it held, so the pool is kept small: at most this many uploads' worth.
GRPC_ALLOCATION_POOL = 2
# Starts of tritonserver when one dies of a signal before its models are ready (see TritonServer.wait_ready).
START_ATTEMPTS = 3
# Triton's own bound on an HTTP request body; older builds (the one PyTriton 0.7 bundles) lack the option.
HTTP_MAX_INPUT_OPTION = "--http-max-input-size"
# An upload is sent as one BYTES tensor: the request around it (JSON header, tensor framing, the
# optional frames/topk inputs) adds well under this much.
REQUEST_OVERHEAD_BYTES = 1 << 16


def import_pytriton_distribution() -> ModuleType:
    """PyTriton's helpers that locate its bundled server; one line naming the extra when it is missing."""
    try:
        import tritonclient.grpc  # noqa: F401  (the config writer needs its protobuf)
        from pytriton.utils import distribution
    except ImportError:
        raise MissingDependencyError(SERVE_EXTRA) from None
    return distribution


@dataclass(frozen=True)
class Endpoints:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002

    @property
    def local_host(self) -> str:
        """Where this machine reaches the server (a wildcard bind is reached on loopback)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    def url(self, path: str = "") -> str:
        return f"http://{self.local_host}:{self.http_port}{path}"


@dataclass(frozen=True)
class ServeOptions:
    artifact: Path
    name: str
    batching: triton_config.Batching
    decode_workers: int = 2
    topk: int = 5
    sampling: str = "uniform"
    max_frames: int = triton_config.DEFAULT_MAX_FRAMES
    exit_timeout_s: int = 30
    verbose: bool = False
    backend: str = "auto"  # open_model's, resolved by stam-serve before the models load
    precision: str = "fp32"
    limits: Limits = SERVER_LIMITS  # what one uploaded video may cost to decode
    max_queue: int | None = triton_config.DEFAULT_MAX_QUEUE  # videos waiting for a decode worker


def write_repository(root: Path, info: ArtifactInfo, options: ServeOptions) -> None:
    """Two Python-backend models: NAME (the artifact) and NAME_video (decode, then its own copy of the artifact)."""
    frames = triton_config.frames_range(info, options.max_frames)
    tensors = triton_config.tensor_model_config(
        options.name,
        info,
        options.batching,
        backend="python",
        parameters={
            "artifact": str(options.artifact.resolve()),
            "frames": f"{frames.min}:{frames.opt}:{frames.max}",
            **triton_config.open_parameters(options.backend, options.precision),
        },
    )
    video_batching = triton_config.Batching(
        options.batching.max_batch,
        options.batching.max_queue_delay_us,
        options.decode_workers,
        options.batching.dynamic,
    )
    video = triton_config.video_model_config(
        options.name + triton_config.VIDEO_SUFFIX,
        tensors.max_batch_size,
        video_batching,
        parameters={
            "artifact": str(options.artifact.resolve()),
            "frames": f"{frames.min}:{frames.opt}:{frames.max}",
            "default_frames": str(min(max(info.frames_trained, frames.min), frames.max)),
            "topk": str(options.topk),
            "sampling": options.sampling,
            "limits": triton_config.limits_parameter(options.limits),
            **triton_config.open_parameters(options.backend, options.precision),
        },
        max_queue=options.max_queue,
    )
    for kind, model in (("tensors", tensors), ("video", video)):
        directory = root / model.name
        (directory / "1").mkdir(parents=True)
        (directory / "config.pbtxt").write_text(triton_config.to_text(model))
        (directory / "1" / "model.py").write_text(
            f'"""Written by stam-serve."""\nfrom serve.backend import {BACKEND_SHIMS[kind]} as TritonPythonModel  # noqa: F401\n'
        )
        if kind == "tensors" and info.labels:
            triton_config.write_labels(directory, info.labels)


def prepare_backends(root: Path, distribution: ModuleType) -> tuple[Path, Path]:
    """backends/python with the stub built for this interpreter's version (links, no copies); the binary."""
    dist = distribution.get_root_module_path() / "tritonserver"
    python_backend = root / "backends" / "python"
    python_backend.mkdir(parents=True)
    for item in (dist / "backends" / "python").iterdir():
        if item.is_file():
            (python_backend / item.name).symlink_to(item)
    stub = Path(distribution.get_stub_path(f"{sys.version_info.major}.{sys.version_info.minor}"))
    if not stub.is_file():
        raise MissingDependencyError(
            f"nvidia-pytriton ships no Python backend stub for Python {sys.version_info.major}.{sys.version_info.minor}"
        )
    (python_backend / "triton_python_backend_stub").symlink_to(stub)
    return root / "backends", dist / "bin" / "tritonserver"


def server_environment(distribution: ModuleType) -> dict[str, str]:
    """This interpreter's libpython first, then the bundled libraries; this interpreter's import path for the stub."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [libdir, str(distribution.get_libs_path()), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(Path.cwd()), *sys.path] if p and Path(p).is_dir())
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def server_arguments(
    binary: Path, repository: Path, backends: Path, endpoints: Endpoints, options: ServeOptions
) -> list[str]:
    host = endpoints.host
    return [
        str(binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--http-address={host}",
        f"--http-port={endpoints.http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={endpoints.grpc_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--allow-cpu-metrics=true",
        f"--metrics-address={host}",
        f"--metrics-port={endpoints.metrics_port}",
        # Shared-memory names are global: a per-process prefix lets several servers run on one host.
        f"--backend-config=python,shm-region-prefix-name=stam-serve-{os.getpid()}-",
        # Each stub starts with 4 MiB of /dev/shm (a container's default is 64 MiB) and grows in 16 MiB steps.
        "--backend-config=python,shm-default-byte-size=4194304",
        "--backend-config=python,shm-growth-byte-size=16777216",
        f"--exit-timeout-secs={options.exit_timeout_s}",
        "--strict-readiness=true",
        f"--log-info={'true' if options.verbose else 'false'}",
        *request_size_arguments(binary, options.limits),
    ]


def supports_option(binary: Path, option: str) -> bool:
    """Whether this tritonserver build knows a command-line option (its help text is in the binary)."""
    needle = option.lstrip("-").encode()
    try:
        return needle in binary.read_bytes()
    except OSError:
        return False


def request_size_arguments(binary: Path, limits: Limits) -> list[str]:
    """Triton's own request-size bounds: the gRPC reuse pool always, the HTTP body where the build has it."""
    arguments = [f"--grpc-infer-allocation-pool-size={GRPC_ALLOCATION_POOL}"]
    if limits.max_video_bytes is not None and supports_option(binary, HTTP_MAX_INPUT_OPTION):
        arguments.append(f"{HTTP_MAX_INPUT_OPTION}={limits.max_video_bytes + REQUEST_OVERHEAD_BYTES}")
    return arguments


def _die_with_parent() -> None:
    """Runs in the child before exec: if stam-serve is killed outright, the server gets SIGTERM."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TritonServer:
    """One tritonserver process and its workspace; `stop()` drains in-flight requests, then removes both."""

    def __init__(self, info: ArtifactInfo, options: ServeOptions, endpoints: Endpoints):
        self.info, self.options, self.endpoints = info, options, endpoints
        self.workspace: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.signalled = False

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running tritonserver; using it before `start()` is a programming error, said plainly."""
        if self._process is None:
            raise RuntimeError("tritonserver has not been started: call TritonServer.start() first")
        return self._process

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        """Once: Triton stops taking requests, finishes those in flight, unloads the models and exits."""
        if self._process is not None and self._process.poll() is None and not self.signalled:
            self.signalled = True
            self.process.send_signal(sig)

    def start(self) -> TritonServer:
        distribution = import_pytriton_distribution()
        self.workspace = Path(tempfile.mkdtemp(prefix="stam-serve-"))
        repository = self.workspace / "models"
        write_repository(repository, self.info, self.options)
        backends, binary = prepare_backends(self.workspace, distribution)
        arguments = server_arguments(binary, repository, backends, self.endpoints, self.options)
        self._process = subprocess.Popen(arguments, env=server_environment(distribution), preexec_fn=_die_with_parent)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Return once Triton says every model is ready; a clear error if it exits or takes too long.

        A server killed by a signal while its models load (the bundled Triton's Python backend can abort
        with a boost::interprocess::lock_exception as its stubs start: a race, not a configuration
        error) is started again, up to START_ATTEMPTS in all, each time with one warning line.
        """
        deadline = time.monotonic() + timeout_s
        attempt = 1
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None and code < 0 and attempt < START_ATTEMPTS and not self.signalled:
                attempt += 1
                print(
                    f"warning: tritonserver was killed by signal {-code} while starting; "
                    f"starting it again (attempt {attempt} of {START_ATTEMPTS})",
                    file=sys.stderr,
                    flush=True,
                )
                self.stop()
                self.start()
                continue
            if code is not None:
                raise StamError(f"tritonserver exited with code {code} before it was ready (its log above says why)")
            if is_ready(self.endpoints):
                return
            time.sleep(0.2)
        raise StamError(f"tritonserver was not ready after {timeout_s:.0f} s")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Ask the server to finish in-flight requests and exit; kill it only after its own exit timeout."""
        code = 0
        if self._process is not None and self._process.poll() is None:
            self.request_stop(sig)
            try:
                code = self.process.wait(self.options.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        elif self._process is not None:
            code = self._process.returncode
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None
        return code

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def is_ready(endpoints: Endpoints) -> bool:
    try:
        with urllib.request.urlopen(endpoints.url("/v2/health/ready"), timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
