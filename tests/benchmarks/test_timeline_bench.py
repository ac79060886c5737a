"""benchmarks.timeline: the whole-video hit rate it reports, and its table (the timing itself is the script's job)."""

from __future__ import annotations

import pytest

from benchmarks.timeline import full_video_hit_rate, render


@pytest.mark.parametrize(
    "samples, window, stride, expected",
    [
        (960, 16, 1, 1 - 960 / (945 * 16)),  # every sample embedded once, 945 windows
        (960, 16, 4, 1 - 960 / (237 * 16)),  # 237 regular windows, none left for a tail
        (962, 16, 4, 1 - 962 / (238 * 16)),  # a 2-sample tail gets one more window
        (960, 16, 16, 0.0),  # no overlap: nothing to reuse
        (100, 8, 20, 0.0),  # gaps: samples between windows are never embedded
    ],
)
def test_full_video_hit_rate(samples, window, stride, expected):
    assert full_video_hit_rate(samples, window, stride) == pytest.approx(expected)


def test_table_names_the_machine_and_the_method():
    timing = {"windows_timed": 16, "windows_per_second": 2.0, "seconds": 8.0, "first_batch_seconds": 3.0}
    document = {
        "model": "stam_16 fp32, random weights, ONNX Runtime CPU",
        "window": 16,
        "fps": 1.6,
        "batch_windows": 8,
        "machine": {
            "cpu": "AMD EPYC",
            "cpu_flags": ["avx2", "fma"],
            "cpu_cores": 2,
            "cpu_cores_usable": 2,
            "libraries": {"onnxruntime": "1.32.0"},
            "gpu": None,
        },
        "video": {"seconds": 600.0, "samples": 960},
        "peak_rss_mib": 900.0,
        "rows": [
            {
                "stride": 4,
                "split": {**timing, "hit_rate_run": 0.7},
                "whole": {**timing, "windows_per_second": 0.5},
                "speedup": 4.0,
                "hit_rate_full_video": 0.75,
            }
        ],
    }
    table = render(document)
    assert (
        "CPU AMD EPYC (flags: avx2 fma), 2 of 2 cores usable; no GPU; onnxruntime 1.32.0" in table
        and "times 16 windows after the first batch" in table
    )
    assert "| 4 | 2.000 | 0.500 | 4.0x | 70.0% | 75.0% |" in table
