"""The motion task: synthetic videos whose class only time can tell, and the small STAM trained on them.

No STAM weights or Kinetics videos are available to this project, and random weights make every
accuracy claim meaningless. A textured object moving left/right/up/down, rotating either way,
growing, shrinking or standing still is a task that one frame cannot solve and that reversed
frame order confuses, so a model trained on it proves that export, sampling, preprocessing and
reduced precision keep accuracy.
"""

from __future__ import annotations

from pathlib import Path

MOTION_DIR = Path(__file__).resolve().parent
SHIPPED_CHECKPOINT = MOTION_DIR / "stam_motion.pth"
TRAIN_SEED = 0  # the training set's generator seed
HELD_OUT_SEED = 1000  # any seed other than TRAIN_SEED gives videos the model never saw
