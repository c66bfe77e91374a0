"""`resdsl train`: the trainer (with the backend, the only code that imports torch).

- config.py: TrainConfig, the run's settings;
- data.py: digits / CIFAR-10 / image folders / synthetic, as tensors;
- loop.py: the checks before any work, the set-up, the loop, DDP under torchrun;
- checkpoint.py: atomic checkpoints, resume, --init-from and --freeze;
- progress.py: the progress bar and the curves plot (matplotlib optional).
"""

from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
