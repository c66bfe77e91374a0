"""What a training run is asked to do. A hyper-parameter left None comes from the recipe (recipe.py).

`explicit` names the settings the user gave (the command line knows); `given` answers for API callers
too, where a setting differing from its default counts as given. `--resume` restores the run's settings
from its checkpoint and refuses a given one that conflicts, but for those in `checkpoint.CHANGEABLE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class TrainConfig:
    spec: str
    data: str = "digits"
    recipe: str = "auto"  # "auto" | "imagenet" | "cifar"
    epochs: int | None = None
    batch_size: int | None = None  # per process and micro-step
    lr: float | None = None  # SGD with Nesterov off, as the paper and torchvision
    momentum: float = 0.9
    weight_decay: float | None = None
    no_decay_norm_bias: bool = False  # no weight decay on 1-d tensors (norms, biases)
    warmup_epochs: float | None = None  # linear warm-up, then `schedule`
    schedule: str | None = None  # "cosine" | "step"
    label_smoothing: float = 0.0
    ema: float | None = None  # decay per optimizer step of an average of the weights (0.9998)
    accumulate: int = 1  # micro-batches per optimizer step
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule still spans the epochs)
    max_time: float | None = None  # stop after this many seconds of training
    log: tuple[str, ...] = ()  # ("tensorboard",): event files beside metrics.jsonl
    log_every: int = 50  # read the device's running sums every N steps (progress, TensorBoard)
    workers: int | None = None  # DataLoader workers per process (streamed data); None: from the cores
    on_bad_image: str = "fail"  # "fail" | "skip"
    decode: str = "worker"  # "worker" | "device": JPEGs decoded on the GPU (nvJPEG), in batches
    epoch_samples: int | None = None  # wds shards not on local disk: the samples of an epoch
    device: str = "auto"  # "auto" | "cuda" | "cpu"
    amp: str = "auto"  # "bf16" | "fp16" | "off"; auto: bf16 on CUDA, off on CPU
    channels_last: bool | None = None  # None: on for image inputs (CUDA and CPU)
    compile: bool = False
    cuda_graphs: bool = False  # torch.compile(mode="reduce-overhead"): CUDA graphs of the step
    seed: int = 0
    out: str = "runs/run"
    resume: bool = False
    overwrite: bool = False  # train into a run directory that holds a run, replacing it
    init_from: str | None = None
    strict: bool = False  # with init_from: a tensor beyond the classifier that does not match is an error
    freeze: tuple[str, ...] = ()
    sync_bn: bool = False
    overrides: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    network: str | None = None
    max_memory: int | None = None  # bytes; None: the machine's memory (the CUDA device's free memory)
    explicit: frozenset[str] | None = None  # the fields the user set; None: those that differ from the defaults


def given(cfg: TrainConfig) -> set[str]:
    """The settings the user gave: `explicit`, or for API callers those that differ from the defaults."""
    if cfg.explicit is not None:
        return set(cfg.explicit)
    defaults = TrainConfig(spec=cfg.spec)
    return {f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(defaults, f.name)}
