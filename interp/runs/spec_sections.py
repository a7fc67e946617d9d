"""The sections of a run spec (``[optim]``, ``[train]``, ``[eval]``) and their value checks.

:class:`interp.zoo.registry.spec.TrainSpec` holds one of each; this module validates a section table
(unknown keys, types, ranges).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from interp.core.config import check_fields, is_int
from interp.core.errors import InterpError


class _Section:
    """``to_dict``/``from_dict`` of a spec section (``[optim]``, ``[train]``, ``[eval]``); the
    validation is the one :meth:`TrainSpec.from_dict` applies to the section."""

    SECTION: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Any:
        """Validate a section table (unknown keys, types, ranges); ``None`` gives the defaults."""
        return parse_section(cls, d, cls.SECTION)


@dataclass
class OptimConfig(_Section):
    """AdamW with linear warm-up, a constant phase, then cosine decay.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_steps: linear warm-up from 0.
        decay_fraction: the last fraction of training decays with a cosine to ``min_lr_ratio * lr``.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        grad_clip: max gradient norm (0 disables).
    """

    SECTION: ClassVar[str] = "optim"

    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100
    decay_fraction: float = 0.2
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate for 0-based ``step`` of ``total``."""
        import math

        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        decay_start = int(total * (1 - self.decay_fraction))
        if step < decay_start or total <= decay_start:
            return self.lr
        t = (step - decay_start) / max(1, total - decay_start)
        return self.lr * (
            self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        )


@dataclass
class TrainConfig(_Section):
    """Loop settings.

    Attributes:
        steps: optimizer steps.
        batch_size: examples per step.
        n_buckets: length-bucketing pool size in batches (1 disables bucketing).
        checkpoint_every: save every this many steps (0: only at the end).
        checkpoint_steps: extra explicit steps to checkpoint at.
        log_every: record the training loss every this many steps.
        threads: torch CPU threads for training (0: torch's default, one per core). The
            default, 1, makes CPU training bit-reproducible: two runs of one spec, and a run
            killed and resumed, end with identical weights. With more than one thread the
            reductions inside matrix products are split differently from run to run, and the
            weights differ in the last bits, then more as training amplifies them (``interp
            train`` says so when it starts). Sweep cells always use one thread.
        device: where to train and, by default, analyse the run: ``auto`` (a CUDA GPU when
            one is visible, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
            (:mod:`interp.core.device`). ``--device`` overrides it.
        autocast: ``off`` or ``bf16``: bfloat16 autocast of the training forward pass, on a
            CUDA GPU with native bfloat16 or a CPU with bfloat16 matrix instructions (an error
            on a CPU without them; :func:`interp.core.device.autocast_enabled`). Weights, optimizer
            state, loss and checkpoints stay float32.
        compile: run the training forward pass through ``torch.compile`` (inductor). The
            first steps of each sequence length compile (tens of seconds on a CPU); the
            arithmetic then differs from eager by float rounding, so a run should keep one
            setting from start to end (each checkpoint records the one it was written under).
        tf32: let CUDA run the training step's float32 matmuls in TF32 (10-bit mantissa
            inputs, float32 accumulation; Ampere or newer), several times the float32 matmul
            rate; ignored off CUDA and outside the training step (evaluation stays float32).
            Like ``compile`` it changes the arithmetic, so a run should keep one setting.
        prefetch: make the training batches ahead in a background thread
            (:class:`interp.tasks.batches.Prefetcher`; the stream is identical either way): ``auto``
            (on CUDA only: on a CPU the thread would take a core from the training, or from
            the run beside it), ``on`` or ``off``.
    """

    SECTION: ClassVar[str] = "train"

    steps: int = 1000
    batch_size: int = 128
    n_buckets: int = 8
    checkpoint_every: int = 0
    checkpoint_steps: list[int] = field(default_factory=list)
    log_every: int = 25
    threads: int = 1
    device: str = "auto"
    autocast: str = "off"
    compile: bool = False
    tf32: bool = False
    prefetch: str = "auto"

    def save_steps(self) -> list[int]:
        s = set(self.checkpoint_steps) | {self.steps}
        if self.checkpoint_every:
            s |= set(range(self.checkpoint_every, self.steps + 1, self.checkpoint_every))
        return sorted(x for x in s if 0 < x <= self.steps)


@dataclass
class EvalConfig(_Section):
    """Evaluation settings used during training and as defaults for ``interp eval``.

    Attributes:
        max_length: evaluate every task at lengths ``1..max_length`` (clipped to the task's
            range); ``n_ctx`` is sized so that this fits.
        every: periodic evaluation interval in steps (0: only at checkpoints).
        examples: examples per (task, length) during training.
        final_examples: examples per (task, length) for ``interp eval`` (the paper's 1024).
        seed: evaluation-set seed.
        batch_size: rows per forward pass in evaluation and head scoring (0: the device's
            default, :func:`interp.core.device.default_batch_size`).
    """

    SECTION: ClassVar[str] = "eval"

    max_length: int = 0
    every: int = 0
    examples: int = 128
    final_examples: int = 1024
    seed: int = 0
    batch_size: int = 0


SEED_MAX = 2**32 - 1  # numpy's SeedSequence and torch both accept 0..2**32-1
# Valid ranges per section and key: (low, high, low excluded). The upper bounds only catch
# typos (a batch of a billion examples) before they exhaust memory; they are far above any
# experiment this package is for.
_RANGES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "optim": {
        "lr": (0, 10, True),
        "weight_decay": (0, 10, False),
        "warmup_steps": (0, 10**9, False),
        "decay_fraction": (0, 1, False),
        "min_lr_ratio": (0, 1, False),
        "grad_clip": (0, 1e6, False),
    },
    "train": {
        "steps": (1, 10**9, False),
        "batch_size": (1, 2**20, False),
        "n_buckets": (1, 10**4, False),
        "checkpoint_every": (0, 10**9, False),
        "log_every": (1, 10**9, False),
        "threads": (0, 1024, False),
    },
    "eval": {
        "max_length": (0, 10**4, False),
        "every": (0, 10**9, False),
        "examples": (1, 10**6, False),
        "final_examples": (1, 10**6, False),
        "seed": (0, SEED_MAX, False),
    },
}


def describe_range(lo: float, hi: float, lo_open: bool = False) -> str:
    """``1..100`` for an integer range, ``(0, 10]`` / ``[0, 1]`` for a real one."""
    if isinstance(lo, int) and isinstance(hi, int) and not lo_open:
        return f"{lo}..{hi}"
    return f"{'(' if lo_open else '['}{lo}, {hi}]"


def in_range(value: float, lo: float, hi: float, lo_open: bool = False) -> bool:
    """Whether ``value`` is finite and inside the range (NaN and infinities never are)."""
    return math.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi


def check_seed(value: Any, what: str = "seed") -> int:
    """Refuse anything but an integer in ``0..2**32-1`` (what numpy and torch accept)."""
    if not is_int(value) or not 0 <= value <= SEED_MAX:
        raise InterpError(f"{what} must be an integer in 0..{SEED_MAX}, got {value!r}")
    return value


def parse_section(cls: type, d: Any, name: str) -> Any:
    if d is None:
        return cls()
    if not isinstance(d, dict):
        raise InterpError(f"spec: [{name}] must be a table")
    check_fields(cls, d, "spec", name)
    for key, value in d.items():
        bounds = _RANGES.get(name, {}).get(key)
        if bounds and not in_range(value, *bounds):
            raise InterpError(
                f"spec: [{name}] {key} must be in {describe_range(*bounds)}, got {value!r}"
            )
    if "betas" in d and not all(in_range(b, 0, 1) and b < 1 for b in d["betas"]):
        raise InterpError(f"spec: [{name}] betas must lie in [0, 1), got {d['betas']!r}")
    if "checkpoint_steps" in d and not all(x >= 1 for x in d["checkpoint_steps"]):
        raise InterpError(f"spec: [{name}] checkpoint_steps must be positive steps")
    d = dict(d)
    if "betas" in d:
        d["betas"] = tuple(d["betas"])
    try:
        return cls(**d)
    except TypeError as e:
        raise InterpError(f"spec: [{name}]: {e}") from None
