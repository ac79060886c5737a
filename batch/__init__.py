"""stam-batch: classify a video corpus with the runtime's decode and models on Ray Data, into Parquet.

The Python API beside the command line:

    from batch import JobConfig, run_job
    summary = run_job(JobConfig(model="stam_16.onnx", inputs=["videos/"], out="results/"))

Ray is imported only when a job runs (the `[ray]` extra); `runtime/` never imports it.
"""

from batch.job import JobConfig, Summary, run_job

__all__ = ["JobConfig", "Summary", "run_job"]
