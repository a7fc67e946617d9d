"""Checkpoints: safetensors tensors plus JSON metadata, never pickles.

A training checkpoint ``RUN_DIR/checkpoints/step_000500.safetensors`` holds

* the model weights under ``model.<name>``;
* the AdamW state under ``optim.<param_index>.<key>`` (``exp_avg``, ``exp_avg_sq``, ``step``);
* the torch CPU RNG state under ``rng.torch`` (training draws no CUDA random numbers: there is
  no dropout, and data come from seeded numpy generators);

and its safetensors header metadata carries the step, the optimizer's param groups (JSON) and
the Python ``random`` state (the global numpy RNG is never used: data come from seeded
Generators). Data need no state: the batch at a step is a pure function
of ``(seed, step)`` (see :mod:`interp.tasks.batches`).

``RUN_DIR/checkpoints/index.json`` lists every checkpoint with its SHA-256, so a truncated or
bit-flipped file is reported as corrupt instead of loading garbage. Every file is written to a
temporary name and renamed (:mod:`interp.core.io`).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from interp.core.errors import InterpError
from interp.core.io import atomic_path, read_json, write_json

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

CKPT_DIR = "checkpoints"
INDEX = "index.json"


def ckpt_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _index_path(run_dir: Path) -> Path:
    return Path(run_dir) / CKPT_DIR / INDEX


def read_index(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The checkpoint index: ``{str(step): {"file": ..., "sha256": ...}}`` (empty if none).

    Raises:
        InterpError: for an index that is not of that shape (reported as corrupt).
    """
    p = _index_path(Path(run_dir))
    if not p.is_file():
        return {}
    index = read_json(p)
    problem = _index_problem(index)
    if problem:
        raise InterpError(f"corrupt checkpoint index {p}: {problem}")
    return index


def _index_problem(index: Any) -> str:
    """What is wrong with a parsed index.json ('' if nothing)."""
    if not isinstance(index, dict):
        return f"expected an object of steps, got {type(index).__name__}"
    for step, entry in index.items():
        if not (step.isdigit() and step == str(int(step))):
            return f"step {step!r} is not a non-negative integer"
        if not isinstance(entry, dict):
            return f"entry for step {step} is not an object"
        f, digest = entry.get("file"), entry.get("sha256")
        if not isinstance(f, str) or Path(f).name != f or not f:
            return f"entry for step {step} has no valid 'file'"
        if not (isinstance(digest, str) and len(digest) == 64):
            return f"entry for step {step} has no valid 'sha256'"
    return ""


def list_checkpoints(run_dir: str | Path) -> list[int]:
    """Steps that have a checkpoint, ascending."""
    return sorted(int(s) for s in read_index(run_dir))


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: HookedTransformer,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write the checkpoint for ``step`` and record it in the index.

    Args:
        run_dir: the run directory.
        step: number of optimizer steps taken.
        model: the model.
        optimizer: optimizer whose state to include (omit for weight-only checkpoints).
        extra: more JSON-serialisable metadata.
        half: store parameters in float16 (for the small model zoo); buffers stay exact.
    """
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    # Only trained parameters are halved: buffers such as the RoPE sin/cos tables are loaded
    # back verbatim, so rounding them would make a reloaded model differ from a fresh one.
    params = {name for name, _ in model.named_parameters()}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if half and v.is_floating_point() and k in params:
            v = v.half()
        tensors[f"model.{k}"] = v.contiguous()
    meta: dict[str, str] = {"step": str(step), "extra": json.dumps(extra or {})}
    if optimizer is not None:
        sd = optimizer.state_dict()
        for pid, state in sd["state"].items():
            for key, val in state.items():
                t = val if torch.is_tensor(val) else torch.tensor(val, device="cpu")
                tensors[f"optim.{pid}.{key}"] = t.detach().cpu().contiguous()
        meta["param_groups"] = json.dumps(sd["param_groups"])
        tensors["rng.torch"] = torch.get_rng_state()
        meta["rng_python"] = json.dumps(random.getstate())
    path = run_dir / CKPT_DIR / ckpt_name(step)
    # A failed write (a full disk) leaves the previous checkpoints and the index as they were:
    # the temporary file is removed and the index only ever names complete files, so the run
    # resumes from its last good checkpoint once there is room again.
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    except SafetensorError as e:  # safetensors reports the OS's error (ENOSPC) as its own type
        raise InterpError(f"cannot write checkpoint {path}: {e}") from None
    index = read_index(run_dir)
    index[str(step)] = {"file": path.name, "sha256": sha256(path)}
    write_json(_index_path(run_dir), index)
    return path


def resolve_step(run_dir: str | Path, step: int | None) -> int:
    """Validate ``step`` (``None``: the latest) against the run's checkpoints."""
    steps = list_checkpoints(run_dir)
    if not steps:
        raise InterpError(f"no checkpoints in {run_dir} (is it a run directory?)")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise InterpError(
            f"no checkpoint at step {step} in {run_dir}; available steps: "
            f"{', '.join(map(str, steps))}"
        )
    return step


def load_tensors(
    run_dir: str | Path, step: int, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read and verify one checkpoint file; returns ``(tensors, metadata)``.

    Args:
        run_dir: the run directory.
        step: the checkpoint step.
        device: where the tensors are materialised (what ``map_location`` does for
            pickled checkpoints). Checkpoints are written from the CPU and carry no
            device, so one written on a GPU loads on a CPU and the other way round.
    """
    from safetensors import safe_open

    run_dir = Path(run_dir)
    entry = read_index(run_dir).get(str(step))
    if entry is None:
        resolve_step(run_dir, step)  # raises with the list of available steps
    path = run_dir / CKPT_DIR / entry["file"]
    if not path.is_file():
        raise InterpError(f"checkpoint file missing: {path}")
    if sha256(path) != entry["sha256"]:
        raise InterpError(f"corrupt checkpoint {path}: its SHA-256 does not match index.json")
    try:
        tensors = load_file(str(path), device=str(device))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise InterpError(f"corrupt checkpoint {path}: {e}") from None
    return tensors, meta


def load_model_weights(model: HookedTransformer, tensors: dict[str, torch.Tensor]) -> None:
    """Copy ``model.*`` tensors into ``model`` (cast to its dtype), strictly."""
    sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise InterpError(
            f"checkpoint does not match the model config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise InterpError(
                f"checkpoint tensor {k} has shape {tuple(v.shape)}, "
                f"the model expects {tuple(own[k].shape)}"
            )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


def restore_training_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, str]
) -> None:
    """Restore optimizer and RNG state written by :func:`save_checkpoint`."""
    if "param_groups" not in meta:
        raise InterpError("checkpoint has no optimizer state (a weights-only checkpoint)")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            # load_state_dict moves moment tensors to their parameter's device but leaves
            # "step" where it is; a fresh (non-capturable) AdamW keeps it on the CPU.
            state.setdefault(int(pid), {})[key] = v.cpu() if key == "step" else v
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    # The CPU generator's state must be a CPU tensor, wherever the other tensors were loaded.
    torch.set_rng_state(tensors["rng.torch"].cpu())
    py_state = json.loads(meta["rng_python"])
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
