"""`resdsl train`: the trainer (with the backend, the only code that imports torch).

- config.py: TrainConfig, the run's settings;
- data.py: digits / CIFAR-10 / image folders / synthetic, as tensors;
- loop.py: the loop, checkpoints, resume, DDP under torchrun, the curves plot.
"""

from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
