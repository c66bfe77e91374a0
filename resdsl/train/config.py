"""What a training run is asked to do. Defaults follow the paper's CIFAR recipe."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    spec: str
    data: str = "digits"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1              # SGD, momentum 0.9, weight decay 1e-4 (He et al. 2015, section 4.2)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0   # linear warm-up, then `schedule`
    schedule: str = "cosine"     # "cosine" | "step" (÷10 at 50% and 75% of the epochs)
    device: str = "auto"         # "auto" | "cuda" | "cpu"
    amp: str = "auto"            # "bf16" | "fp16" | "off"; auto: bf16 on CUDA, off on CPU
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False
    seed: int = 0
    out: str = "runs/run"
    resume: bool = False
    init_from: str | None = None
    strict: bool = False         # with init_from: a tensor beyond the classifier that does not match is an error
    freeze: tuple[str, ...] = ()
    sync_bn: bool = False
    overrides: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    network: str | None = None
    max_memory: int | None = None  # bytes; None: the machine's memory (the CUDA device's free memory)
