"""`resdsl train`: the trainer (with the backend, the only code that imports torch).

- config.py: TrainConfig, the run's settings;
- recipe.py: the defaults by the data (torchvision's ImageNet recipe, the paper's CIFAR one), parameter
  groups and the schedule;
- data.py: digits / CIFAR-10 / synthetic (of any input rank), as tensors in memory;
- transforms.py: RandomResizedCrop + flip and resize + centre crop, seeded per sample, on uint8;
- decode.py: one image file read (regular, bounded) and decoded by its content to RGB or grey;
- stream.py: image folders through DataLoader workers, bad images reported, decoding on the device;
- shards.py: WebDataset tar shards;
- arrays.py: folders of .npy arrays of any input rank (sequences, images, volumes), memory-mapped;
- sources.py: one interface over them all (batches of an epoch, on the device);
- loop.py: the checks before any work, the set-up, the loop, DDP under torchrun;
- metrics.py: running sums on the device, metrics.jsonl and TensorBoard;
- checkpoint.py: atomic checkpoints, resume, --init-from and --freeze;
- progress.py: the progress bar and the curves plot (matplotlib optional).
"""

from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
