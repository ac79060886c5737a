"""Online serving: `stam-serve` (the artifact behind Triton, via PyTriton's bundled server) and `stam-triton-repo`.

Nothing here is imported by `runtime/`; tritonclient and the bundled tritonserver come with the `[serve]` extra.
"""
