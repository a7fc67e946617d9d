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
    #                            # (every layer; interp.models.head_mask)

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

To fine-tune a pretrained checkpoint instead (:mod:`interp.models.pretrained`), ``[model]`` names
its
local directory and nothing else but, optionally, ``n_ctx``; the architecture fields are read
from the checkpoint and recorded::

    [model]
    pretrained = "checkpoints/smollm2-360m/step-160000"

A spec round-trips through :meth:`TrainSpec.to_dict` / :meth:`TrainSpec.from_dict`; the run
directory keeps the resolved dict as ``config.json``, and a resume must match it exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from interp.core.config import check_keys, is_int, is_number, read_config_file
from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig, load_preset
from interp.models.head_mask import check_spec_heads, parse_heads
from interp.runs.spec_sections import (
    EvalConfig,
    OptimConfig,
    TrainConfig,
    check_seed,
    in_range,
    parse_section,
)
from interp.tasks import get_task
from interp.tasks.base import transfer_range
from interp.tasks.batches import TaskSpec

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
    and on CUDA (deterministic kernels, :func:`interp.core.device.deterministic`), two runs of one
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
        """The per-task head masks (:mod:`interp.models.head_mask`): tasks with ``heads`` only."""
        return {t.name: t.heads for t in self.tasks if t.heads is not None}

    @property
    def aux(self) -> list[str]:
        return [t.name for t in self.tasks if t.name != self.main]

    def train_range(self, task: str) -> tuple[int, int]:
        for t in self.tasks:
            if t.name == task:
                return t.min_length, t.max_length
        raise InterpError(f"task {task!r} is not trained in run {self.name!r}")

    def transfer_range(self) -> tuple[int, int]:
        """The lengths past the main task's training range where transfer is measured.

        From one past the main task's maximum training length to the auxiliaries' maximum (a run
        without auxiliaries uses its evaluation maximum, so a baseline is read on the same lengths
        as the runs it is compared with); see :func:`interp.tasks.base.transfer_range`.
        """
        main_hi = self.train_range(self.main)[1]
        aux = self.aux
        hi = max(self.train_range(a)[1] for a in aux) if aux else max(self.eval_lengths(self.main))
        return transfer_range(main_hi, hi)

    def condition(self) -> str:
        """The run's condition: its auxiliary tasks joined by ``+``, or ``none`` for the main
        alone; a run with per-task head masks (:mod:`interp.models.head_mask`) adds them, e.g.
        ``no_carry+carry_only [heads reverse_add 0,1 | no_carry 2,3 | carry_only 2,3]``."""
        base = "+".join(self.aux) if self.aux else "none"
        masks = self.task_heads
        if not masks:
            return base
        return (
            f"{base} [heads "
            + " | ".join(f"{t} {','.join(map(str, h))}" for t, h in masks.items())
            + "]"
        )

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
        ev = parse_section(EvalConfig, d.get("eval"), "eval")
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
            optim=parse_section(OptimConfig, d.get("optim"), "optim"),
            train=parse_section(TrainConfig, d.get("train"), "train"),
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
    from interp.core.device import check_autocast, check_prefetch, parse_device

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
    from interp.models.pretrained import model_config_dict

    out = model_config_dict(path, n_ctx=n_ctx)
    if "init_seed" in model_d:
        out["init_seed"] = model_d["init_seed"]
    return out


def load_spec(path: str | Path) -> TrainSpec:
    """Read a spec from a ``.toml`` or ``.json`` file."""
    return TrainSpec.from_dict(read_config_file(path))
