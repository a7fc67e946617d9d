"""Run specs: one TOML (or JSON) file fully describes a training run.

Example (``analyses/`` and ``models/`` hold real ones)::

    name = "arith_a_cpu"
    group = "arith_a"            # a label; the tasks below are what is trained
    main = "reverse_add"
    seed = 0

    [[tasks]]
    name = "reverse_add"
    lengths = [1, 6]

    [[tasks]]
    name = "no_carry"
    lengths = [1, 12]
    weight = 1.0
    # heads = [2, 3]             # optional: this task's examples use only these heads
    #                            # (every layer; interp.head_mask)

    [model]
    preset = "cpu"               # models/presets/cpu.json; other keys override it
    positional = "rope"          # n_ctx is sized from the evaluation lengths unless given

    [optim]
    lr = 1e-3

    [train]
    steps = 3000
    batch_size = 128
    checkpoint_every = 500
    threads = 1                  # CPU threads; 1 (the default) gives bit-identical runs/resumes
    device = "auto"              # cpu, cuda, cuda:N, mps; `--device` overrides it
    autocast = "off"             # "bf16": bfloat16 autocast (CUDA, or a CPU with bf16 units)
    compile = false              # true: torch.compile the training forward pass
    tf32 = false                 # true: TF32 float32 matmuls while training on CUDA
    prefetch = "auto"            # batches made ahead in a thread: auto = on CUDA only; on; off

    [eval]
    max_length = 12              # every task is evaluated at lengths 1..max_length
    every = 500
    examples = 128

To fine-tune a pretrained checkpoint instead (:mod:`interp.pretrained`), ``[model]`` names its
local directory and nothing else but, optionally, ``n_ctx``; the architecture fields are read
from the checkpoint and recorded::

    [model]
    pretrained = "checkpoints/smollm2-360m/step-160000"

A spec round-trips through :meth:`TrainSpec.to_dict` / :meth:`TrainSpec.from_dict`; the run
directory keeps the resolved dict as ``config.json``, and a resume must match it exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from interp.config import check_fields, check_keys, is_int, is_number, read_config_file
from interp.data import TaskSpec
from interp.errors import InterpError
from interp.head_mask import check_spec_heads, parse_heads
from interp.model import ModelConfig, load_preset
from interp.tasks import get_task


class _Section:
    """``to_dict``/``from_dict`` of a spec section (``[optim]``, ``[train]``, ``[eval]``); the
    validation is the one :meth:`TrainSpec.from_dict` applies to the section."""

    SECTION: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Any:
        """Validate a section table (unknown keys, types, ranges); ``None`` gives the defaults."""
        return _section(cls, d, cls.SECTION)


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
            (:mod:`interp.device`). ``--device`` overrides it.
        autocast: ``off`` or ``bf16``: bfloat16 autocast of the training forward pass, on a
            CUDA GPU with native bfloat16 or a CPU with bfloat16 matrix instructions (an error
            on a CPU without them; :func:`interp.device.autocast_enabled`). Weights, optimizer
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
            (:class:`interp.data.Prefetcher`; the stream is identical either way): ``auto``
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
            default, :func:`interp.device.default_batch_size`).
    """

    SECTION: ClassVar[str] = "eval"

    max_length: int = 0
    every: int = 0
    examples: int = 128
    final_examples: int = 1024
    seed: int = 0
    batch_size: int = 0


EXECUTION_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("device", "autocast", "compile", "tf32", "prefetch", "threads"),
    "eval": ("batch_size",),
}
"""Settings that say *where and how fast* a run executes, not *what* it trains. A resume may
change them (a GPU run resumed on a CPU; a run whose ``config.json`` records the old default
``threads = 0`` resumed under today's default of 1), so they are left out of
:func:`run_identity`."""


def reproducibility_note(spec: TrainSpec, device: Any) -> str | None:
    """One line when training ``spec`` on ``device`` will not be bit-reproducible, else None.

    On the CPU that is a thread count other than 1 (see :class:`TrainConfig`); with one thread,
    and on CUDA (deterministic kernels, :func:`interp.device.deterministic`), two runs of one
    spec and a killed-and-resumed run give identical weights.
    """
    threads = spec.train.threads
    if str(device).split(":")[0] != "cpu" or threads == 1:
        return None
    import torch

    n = threads or torch.get_num_threads()
    if n == 1:
        return None
    what = "threads = 0 (torch's default" + f", {n} here)" if not threads else f"threads = {n}"
    return (
        f"note: [train] {what}: training on several CPU threads is not bit-reproducible "
        "(two runs, or a resumed run, differ in the last bits); set threads = 1 for identical "
        "weights"
    )


def run_identity(d: dict[str, Any]) -> dict[str, Any]:
    """A spec dict without its :data:`EXECUTION_KEYS`: what a resume must match exactly.

    Also makes a ``config.json`` written before these keys existed compare equal to today's.
    """
    out = dict(d)
    for section, keys in EXECUTION_KEYS.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return out


_TOP_KEYS = {"name", "group", "main", "seed", "tasks", "model", "optim", "train", "eval"}

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


def _section(cls: type, d: Any, name: str) -> Any:
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


@dataclass
class TrainSpec:
    """Everything that defines a training run.

    Attributes:
        name: run name.
        main: the main task (must be one of ``tasks``).
        tasks: the training mixture (main and auxiliaries) with length ranges and weights.
        model: the architecture (``n_ctx`` already resolved).
        optim: optimizer and schedule.
        train: loop settings.
        eval: evaluation settings.
        seed: data seed (and, unless the model config sets one, the init seed).
        group: free-form group label (e.g. ``arith_a``).
    """

    name: str
    main: str
    tasks: list[TaskSpec]
    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    group: str = ""

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def task_heads(self) -> dict[str, tuple[int, ...]]:
        """The per-task head masks (:mod:`interp.head_mask`): tasks with ``heads`` only."""
        return {t.name: t.heads for t in self.tasks if t.heads is not None}

    @property
    def aux(self) -> list[str]:
        return [t.name for t in self.tasks if t.name != self.main]

    def train_range(self, task: str) -> tuple[int, int]:
        for t in self.tasks:
            if t.name == task:
                return t.min_length, t.max_length
        raise InterpError(f"task {task!r} is not trained in run {self.name!r}")

    def eval_lengths(self, task: str) -> list[int]:
        """Evaluation lengths for ``task``: 1..eval.max_length, clipped to the task's range."""
        t = get_task(task)
        hi = min(self.eval.max_length, t.max_length)
        return list(range(t.min_length, hi + 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "main": self.main,
            "seed": self.seed,
            # "heads" only where set, so a maskless run's config.json is what it always was
            "tasks": [
                {"name": t.name, "lengths": [t.min_length, t.max_length], "weight": t.weight}
                | ({"heads": list(t.heads)} if t.heads is not None else {})
                for t in self.tasks
            ],
            "model": self.model.to_dict(),
            "optim": {**asdict(self.optim), "betas": list(self.optim.betas)},
            "train": asdict(self.train),
            "eval": asdict(self.eval),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainSpec:
        """Validate and resolve a spec dict (presets expanded, ``n_ctx`` sized)."""
        if not isinstance(d, dict):
            raise InterpError("spec must be a table/dict")
        check_keys(d, _TOP_KEYS, "spec", noun="top-level keys")
        for req in ("name", "main", "tasks"):
            if req not in d:
                raise InterpError(f"spec: missing required key {req!r}")
        raw_tasks = d["tasks"]
        if not isinstance(raw_tasks, list) or not raw_tasks:
            raise InterpError("spec: 'tasks' must be a non-empty list of [[tasks]] tables")
        tasks = []
        for t in raw_tasks:
            if not isinstance(t, dict) or "name" not in t or "lengths" not in t:
                raise InterpError("spec: every [[tasks]] entry needs 'name' and 'lengths'")
            if not isinstance(t["name"], str):
                raise InterpError(f"spec: a task name must be a string, got {t['name']!r}")
            lo_hi = t["lengths"]
            if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(map(is_int, lo_hi))):
                raise InterpError(f"spec: task {t['name']!r}: lengths must be [min, max] integers")
            check_keys(t, {"name", "lengths", "weight", "heads"}, f"spec: task {t['name']!r}")
            weight = t.get("weight", 1.0)
            if not is_number(weight):
                raise InterpError(f"spec: task {t['name']!r}: weight must be a number")
            if not in_range(weight, 0, 1e6, True):
                raise InterpError(
                    f"spec: task {t['name']!r}: weight must be positive and at most 1e6, "
                    f"got {weight!r}"
                )
            heads = parse_heads(t["heads"], t["name"]) if "heads" in t else None
            spec = TaskSpec(t["name"], lo_hi[0], lo_hi[1], float(weight), heads)
            spec.validate()
            tasks.append(spec)
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise InterpError(f"spec: a task is listed twice in {names}")
        if d["main"] not in names:
            raise InterpError(f"spec: main task {d['main']!r} is not among the tasks {names}")
        seed = check_seed(d.get("seed", 0), "spec: seed")
        if not isinstance(d["name"], str) or not d["name"].strip():
            raise InterpError(f"spec: name must be a non-empty string, got {d['name']!r}")
        if not isinstance(d["main"], str):
            raise InterpError(f"spec: main must be a task name, got {d['main']!r}")
        if "group" in d and not isinstance(d["group"], str):
            raise InterpError(f"spec: group must be a string, got {d['group']!r}")
        ev = _section(EvalConfig, d.get("eval"), "eval")
        if ev.max_length <= 0:
            ev.max_length = max(t.max_length for t in tasks)
        for t in tasks:
            get_task(t.name)  # validated above; keeps the order of errors predictable
        if not isinstance(d.get("model") or {}, dict):
            raise InterpError(f"spec: [model] must be a table, got {d['model']!r}")
        model_d = dict(d.get("model") or {})
        if not isinstance(model_d, dict):
            raise InterpError("spec: [model] must be a table")
        if model_d.get("pretrained"):
            merged = _pretrained_model(model_d)
        else:
            preset = model_d.pop("preset", None)
            if preset is not None and not isinstance(preset, str):
                raise InterpError(f"spec: [model] preset must be a preset name, got {preset!r}")
            base = load_preset(preset) if preset else {}
            merged = {**base, **model_d}
        merged.setdefault("init_seed", seed)
        spec = cls(
            name=str(d["name"]),
            main=d["main"],
            tasks=tasks,
            model=ModelConfig.from_dict({**merged, "n_ctx": merged.get("n_ctx", 1)}),
            optim=_section(OptimConfig, d.get("optim"), "optim"),
            train=_section(TrainConfig, d.get("train"), "train"),
            eval=ev,
            seed=seed,
            group=str(d.get("group", "")),
        )
        if not spec.model.pretrained:
            # A pretrained model keeps its checkpoint's context instead: how many tokens a
            # symbol takes is known only to its tokenizer, so encode() refuses an over-long
            # example when it meets one.
            needed = spec.context_needed()
            if "n_ctx" not in merged:
                spec.model.n_ctx = needed
            elif merged["n_ctx"] < needed:
                raise InterpError(
                    f"spec: model n_ctx={merged['n_ctx']} is too small for evaluation up to "
                    f"length {ev.max_length}, which needs {needed} tokens; "
                    "raise n_ctx or lower eval.max_length"
                )
        check_spec_heads(
            spec.task_heads, spec.model.n_heads, bool(spec.model.pretrained), spec.train.compile
        )
        if spec.train.steps < 1 or spec.train.batch_size < 1:
            raise InterpError("spec: train.steps and train.batch_size must be positive")
        _check_execution(spec)
        return spec

    def context_needed(self) -> int:
        """Tokens (``<bos>`` included) needed to train and evaluate every task of the run."""
        need = 0
        for t in self.tasks:
            task = get_task(t.name)
            hi = max(t.max_length, min(self.eval.max_length, task.max_length))
            need = max(need, 1 + task.max_tokens(hi))
        return need


def _check_execution(spec: TrainSpec) -> None:
    """Validate the device settings' spelling (not the hardware: a spec written for a GPU must
    still load on a CPU machine, e.g. to evaluate its run there with ``--device cpu``)."""
    from interp.device import check_autocast, check_prefetch, parse_device

    t = spec.train
    if not isinstance(t.device, str):
        raise InterpError(f"spec: [train] device must be a string, got {t.device!r}")
    if not isinstance(t.autocast, str):
        raise InterpError(f"spec: [train] autocast must be a string, got {t.autocast!r}")
    if not isinstance(t.prefetch, str):
        raise InterpError(f"spec: [train] prefetch must be a string, got {t.prefetch!r}")
    try:
        t.device = parse_device(t.device)
        check_autocast(t.autocast)
        check_prefetch(t.prefetch)
    except InterpError as e:
        raise InterpError(f"spec: [train] {e}") from None
    if spec.eval.batch_size < 0:
        raise InterpError("spec: [eval] batch_size must be 0 (device default) or positive")


def _pretrained_model(model_d: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``[model] pretrained = "DIR"``: the architecture comes from the checkpoint.

    A run's own ``config.json`` records every field; it is taken as it is (the model factory
    checks the directory still matches at every load). A user's spec may set only ``n_ctx``
    and ``init_seed`` beside ``pretrained``: anything else would contradict the checkpoint.
    """
    path = model_d["pretrained"]
    if not isinstance(path, str):
        raise InterpError("spec: [model] pretrained must be a directory path (a string)")
    known = {f.name for f in fields(ModelConfig)}
    if known <= set(model_d):
        return dict(model_d)
    extra = sorted(set(model_d) - {"pretrained", "n_ctx", "init_seed"})
    if extra:
        raise InterpError(
            f"spec: [model] with pretrained takes only n_ctx beside it (the architecture is the "
            f"checkpoint's), got {extra}"
        )
    n_ctx = model_d.get("n_ctx")
    if n_ctx is not None and (not is_int(n_ctx) or n_ctx < 1):
        raise InterpError(f"spec: [model] n_ctx must be a positive integer, got {n_ctx!r}")
    from interp.pretrained import model_config_dict

    out = model_config_dict(path, n_ctx=n_ctx)
    if "init_seed" in model_d:
        out["init_seed"] = model_d["init_seed"]
    return out


def load_spec(path: str | Path) -> TrainSpec:
    """Read a spec from a ``.toml`` or ``.json`` file."""
    return TrainSpec.from_dict(read_config_file(path))
