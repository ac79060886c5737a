"""benchmarks.batch renders its table from the JSON document alone, with the rates computed right."""

from __future__ import annotations

from benchmarks.batch import render

MACHINE = {
    "cpu": "AMD EPYC",
    "cpu_cores": 2,
    "cpu_cores_usable": 2,
    "torch_threads": 2,
    "os": "Linux",
    "python": "3.11",
    "libraries": {"onnxruntime": "1.32.0"},
    "gpu": None,
}


def test_table_rates_come_from_the_recorded_times():
    document = {
        "machine": MACHINE,
        "load_before": [0.1, 0.2, 0.3],
        "ray_startup_s": 5.0,
        "versions": {"ray": "2.60.0"},
        "results": [
            {
                "command": "python -m runtime.infer",
                "actors": None,
                "videos": 200,
                "wall_s": 40.0,
                "ray_startup_s": None,
            },
            {
                "command": "stam-batch",
                "actors": 2,
                "videos": 200,
                "wall_s": 50.0,
                "ray_startup_s": 10.0,
                "rerun_s": 2.5,
                "decode_ms_mean": 70.2,
                "infer_ms_mean": 28.0,
            },
        ],
    }
    lines = render(document).splitlines()
    assert lines[2] == "| python -m runtime.infer | - | 200 | 40.0 | 5.00 | - | - | - | - | - |"
    assert lines[3] == "| stam-batch | 2 | 200 | 50.0 | 4.00 | 10.0 | 5.00 | 70 | 28 | 2.5 |"
    assert "Ray alone (import + `ray.init()`, no work): 5.0 s" in lines[-1] and "ray 2.60.0" in lines[-1]


def test_cluster_table_comes_from_the_json_with_the_machine_and_its_flags():
    from benchmarks.batch_cluster import render as render_cluster

    document = {
        "created": "2026-12-02T08:13:07Z",
        "command": "python -m benchmarks.batch_cluster --videos 100",
        "machine": MACHINE | {"cpu_flags": ["avx2", "avx512f"]},
        "load_before": [0.5, 0.4, 0.3],
        "versions": {"ray": "2.60.0", "pyarrow": "22.0.0"},
        "cluster_start_s": 24.7,
        "results": [
            {
                "command": "stam-batch --address HEAD --actors 1 --batch-size 8",
                "nodes": 2,
                "cpus_per_node": 1,
                "videos": 100,
                "wall_s": 50.0,
                "ray_startup_s": 10.0,
                "rerun_s": 11.6,
                "decode_ms_mean": 91.2,
                "infer_ms_mean": 44.0,
            }
        ],
    }
    lines = render_cluster(document).splitlines()
    assert lines[2] == (
        "| `stam-batch --address HEAD --actors 1 --batch-size 8` | 2 x 1 | 100 | 50.0 | 2.00 | 10.0 | 2.50 | 91 | 44 | 11.6 |"
    )
    assert "started in 24.7 s" in lines[-1] and "(flags: avx2 avx512f)" in lines[-1] and "ray 2.60.0" in lines[-1]
