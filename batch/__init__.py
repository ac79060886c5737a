"""stam-batch: classify a video corpus with the runtime's decode and models on Ray Data, into Parquet.

The Python API beside the command line:

    from batch import JobConfig, run_job
    summary = run_job(JobConfig(model="stam_16.onnx", inputs=["videos/"], out="results/"))

Ray is imported only when a job runs (the `[ray]` extra); `runtime/` never imports it.
"""

from typing import Any

__all__ = ["JobConfig", "Summary", "run_job"]


def __getattr__(name: str) -> Any:
    """The API resolves on first use, so `import batch.cli` works (and says what to install) without pyarrow."""
    if name in __all__:
        from batch import job

        return getattr(job, name)
    raise AttributeError(f"module 'batch' has no attribute {name!r}")
