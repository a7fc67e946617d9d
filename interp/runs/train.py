"""The training loop, with nothing hidden.

One run = one :class:`~interp.runs.spec.TrainSpec` = one run directory::

    RUN_DIR/
      config.json                  the resolved spec (a resume must match it exactly)
      checkpoints/step_NNNNNN.safetensors, checkpoints/index.json
      metrics.parquet              tidy: step, kind (loss|accuracy), task, length, value
      DONE                         written last, when the final checkpoint is safe
      status.json                  step, loss and speed, every few seconds (sweep cells only)

Each step: pick the step's batch from the deterministic mixture sampler, run the model, take the
cross-entropy on answer tokens only, clip gradients, take an AdamW step at the scheduled learning
rate. Because the batch at a step depends only on ``(seed, step)`` and the checkpoint stores the
optimizer and RNG state, a run killed at any point and resumed from its last checkpoint ends with
exactly the weights of an uninterrupted run (on the same device and software; see
:mod:`interp.core.device` for what holds across devices).

**Devices.** The model is built on the resolved device (``--device``, else ``[train] device``,
else ``auto``), each batch is moved there. With ``[train] autocast = "bf16"`` the forward pass
runs under bfloat16 autocast (CUDA, or a CPU with bfloat16 matrix instructions) and the loss is
taken in float32 from its logits; with ``[train] compile = true`` the forward pass is
``torch.compile(model)``. The device, autocast and compile settings are not part of the run's
identity (:func:`interp.runs.spec.run_identity`), so a run may be resumed elsewhere; every
checkpoint
records the device, autocast and compile it was written under.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp.core.device import (
    autocast_context,
    autocast_enabled,
    compile_model,
    deterministic,
    prefetch_enabled,
    resolve_device,
    tf32,
)
from interp.core.errors import InterpError
from interp.core.io import (
    dir_lock,
    output_dir,
    read_json,
    read_parquet,
    remove_stale_temps,
    write_json,
    write_parquet,
    write_text,
)
from interp.models.checkpoint import (
    CKPT_DIR,
    list_checkpoints,
    load_model_weights,
    load_tensors,
    restore_training_state,
    save_checkpoint,
)
from interp.models.factory import build_model
from interp.runs.dir_kinds import RUN_KIND, claim_dir
from interp.runs.dirs import CONFIG, DONE, METRICS, STATUS
from interp.runs.spec import TrainSpec, run_identity
from interp.scoring.evaluate import accuracy_table
from interp.tasks.batches import Batch, MixtureSampler, Prefetcher, check_context
from interp.tasks.encoding import vocab_for

STATUS_EVERY = 2.0  # seconds between status.json updates


def answer_loss(logits: Float[Tensor, "batch pos d_vocab"], batch: Batch) -> Float[Tensor, ""]:
    """Mean cross-entropy over answer tokens only (prompt and padding carry no loss).

    On a CPU the answer positions are selected with the boolean mask, as always (the
    arithmetic every CPU run and the zoo were trained with). On CUDA that selection would stop
    the host every step (its size depends on the data, so the host must wait for the GPU to
    report it), so there :func:`weighted_answer_loss` computes the same mean without it.
    """
    if logits.device.type == "cuda":
        return weighted_answer_loss(logits, batch)
    mask = batch.answer_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][mask], batch.tokens[:, 1:][mask])


def weighted_answer_loss(
    logits: Float[Tensor, "batch pos d_vocab"], batch: Batch
) -> Float[Tensor, ""]:
    """:func:`answer_loss` without data-dependent shapes: the cross-entropy at every position,
    averaged with the answer mask as weights (equal to it up to float summation order)."""
    per_tok: Float[Tensor, " tokens"] = F.cross_entropy(
        logits[:, :-1].flatten(0, 1), batch.tokens[:, 1:].flatten(), reduction="none"
    )
    w = batch.answer_mask[:, 1:].flatten().to(per_tok.dtype)
    return (per_tok * w).sum() / w.sum()


def make_optimizer(model: HookedTransformer, spec: TrainSpec) -> torch.optim.AdamW:
    """AdamW over trainable parameters: weight decay on every tensor with 2+ dimensions (weight
    matrices, embeddings, and TransformerLens's per-head ``b_Q``/``b_K``/``b_V``), none on norm
    scales and 1-D biases. Frozen parameters (NoPE's ``W_pos``) are left out entirely."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue  # NoPE's frozen W_pos must never move
        (decay if p.ndim >= 2 else no_decay).append(p)
    o = spec.optim
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=o.lr,
        betas=o.betas,
    )


def train_step(
    model: HookedTransformer,
    optimizer: torch.optim.Optimizer,
    spec: TrainSpec,
    batch: Batch,
    step: int,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> Float[Tensor, ""]:
    """One optimisation step at ``step``: scheduled learning rate, answer-only loss, clipping,
    AdamW. ``batch`` is already on the model's device.

    Args:
        forward: what computes the logits (default: ``model`` itself); the throughput benchmark
            passes ``torch.compile(model)`` here, so it times this exact step.

    Returns:
        The step's loss (before the update).
    """
    lr = spec.optim.lr_at(step, spec.train.steps)
    for g in optimizer.param_groups:
        g["lr"] = lr
    fwd = model if forward is None else forward  # not `or`: a compiled module has no bool
    with autocast_context(next(model.parameters()).device, spec.train.autocast):
        logits = fwd(batch.tokens)
    # The loss outside autocast, in float32: a bf16 log-softmax over the vocabulary would round
    # the very quantity being minimised.
    loss = answer_loss(logits.float(), batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if spec.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.optim.grad_clip)
    optimizer.step()
    return loss


def _eval_rows(model: HookedTransformer, spec: TrainSpec, step: int) -> pd.DataFrame:
    acc = accuracy_table(
        model,
        spec.task_names,
        {t: spec.eval_lengths(t) for t in spec.task_names},
        n_examples=spec.eval.examples,
        seed=spec.eval.seed,
        batch_size=spec.eval.batch_size or None,
    )
    model.train()
    return pd.DataFrame(
        {
            "step": step,
            "kind": "accuracy",
            "task": acc["task"],
            "length": acc["length"],
            "value": acc["accuracy"],
        }
    )


def train(
    spec: TrainSpec,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    device: str | torch.device | None = None,
    status: bool = False,
    prefetch: bool | None = None,
) -> HookedTransformer:
    """Train (or resume) a run.

    Args:
        spec: the run spec.
        run_dir: output directory.
        resume: continue from the last checkpoint if the directory has one.
        progress: show a tqdm bar with loss and speed.
        stop_after: stop after this global step, as if killed (used by resume tests).
        device: where to train (default: the spec's ``[train] device``); the checkpoint being
            resumed may come from any device.
        status: keep ``RUN_DIR/status.json`` (step, loss, seconds per step) current, every
            few seconds, for a sweep to show each running cell's progress.
        prefetch: make the batches ahead in a background thread (default: the spec's
            ``[train] prefetch``, whose ``auto`` means on CUDA only); the weights are the same
            either way.

    Returns:
        The trained model (on the training device).

    Raises:
        InterpError: if the directory holds a different run, a checkpoint is corrupt, or the
            device is unknown or not on this machine.
    """
    dev = resolve_device(device if device is not None else spec.train.device)
    autocast_enabled(dev, spec.train.autocast)  # bf16 on hardware without it: refused here
    run_dir = Path(run_dir)
    # Everything that can be refused is checked before the directory is touched, so a rejected
    # spec leaves nothing behind that would then refuse the corrected one.
    TrainSpec.from_dict(spec.to_dict())  # a spec built in code gets the file spec's checks
    model = build_model(spec.model, dev, spec.task_heads)
    optimizer = make_optimizer(model, spec)
    sampler = MixtureSampler(
        spec.tasks,
        spec.train.batch_size,
        spec.seed,
        spec.train.n_buckets,
        n_ctx=spec.model.n_ctx,
        vocab=vocab_for(model),
    )
    claim_dir(run_dir, RUN_KIND)  # not a sweep, zoo entry or experiment
    output_dir(run_dir)
    prev_threads = torch.get_num_threads()
    with dir_lock(run_dir), deterministic(dev):
        remove_stale_temps(run_dir)
        remove_stale_temps(run_dir / CKPT_DIR)
        try:
            return _train_locked(
                spec, run_dir, dev, model, optimizer, sampler, resume, progress, stop_after, status,
                prefetch_enabled(dev, spec.train.prefetch if prefetch is None else prefetch),
            )  # fmt: skip
        finally:  # [train] threads is the run's setting, not the caller's (a notebook's)
            torch.set_num_threads(prev_threads)


def _train_locked(
    spec: TrainSpec,
    run_dir: Path,
    dev: torch.device,
    model: HookedTransformer,
    optimizer: torch.optim.AdamW,
    sampler: MixtureSampler,
    resume: bool,
    progress: bool,
    stop_after: int | None,
    status: bool,
    prefetch: bool,
) -> HookedTransformer:
    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    cfg_path = run_dir / CONFIG
    start = 0
    rows: list[pd.DataFrame] = []
    if cfg_path.exists():
        if run_identity(read_json(cfg_path)) != run_identity(spec.to_dict()):
            raise InterpError(
                f"{run_dir} already holds a run with a different config; use a new --out "
                "directory (or delete the old run)"
            )
        steps = list_checkpoints(run_dir)
        if steps and not resume:
            raise InterpError(f"{run_dir} already has checkpoints; pass resume to continue it")
        if steps:
            start = steps[-1]
            tensors, meta = load_tensors(run_dir, start, device=dev)
            load_model_weights(model, tensors)
            restore_training_state(optimizer, tensors, meta)
            if (run_dir / METRICS).exists():
                old = read_parquet(run_dir / METRICS)
                rows.append(old[old["step"] <= start])
    else:
        write_json(cfg_path, spec.to_dict())

    save_steps = set(spec.train.save_steps())
    total = spec.train.steps
    model.train()
    extra = {
        "device": str(dev),
        "autocast": autocast_enabled(dev, spec.train.autocast),
        "compile": bool(spec.train.compile),
        "tf32": bool(spec.train.tf32 and dev.type == "cuda"),
    }
    # Compiled once per process; each new sequence length compiles on first sight (the bucketed
    # sampler has a few), after which every step runs the generated kernels.
    forward = compile_model(model, dev) if spec.train.compile else None
    bar = tqdm(
        range(start, total), initial=start, total=total, desc=spec.name, disable=not progress
    )
    # Pinned batches let the copy to the GPU run asynchronously, behind the previous step.
    pin = prefetch and dev.type == "cuda"
    source = Prefetcher(sampler, start, total, pin=pin) if prefetch else sampler
    try:
        _loop(spec, run_dir, dev, model, optimizer, source, bar, forward, extra, save_steps,
              rows, start, stop_after, status, pin)  # fmt: skip
    finally:
        if isinstance(source, Prefetcher):
            source.close()
    bar.close()
    if list_checkpoints(run_dir) and list_checkpoints(run_dir)[-1] == total:
        write_text(run_dir / DONE, f"{total}\n")
    return model


def _loop(
    spec: TrainSpec,
    run_dir: Path,
    dev: torch.device,
    model: HookedTransformer,
    optimizer: torch.optim.AdamW,
    source: MixtureSampler | Prefetcher,
    bar: tqdm,
    forward: Callable[[Tensor], Tensor] | None,
    extra: dict[str, object],
    save_steps: set[int],
    rows: list[pd.DataFrame],
    start: int,
    stop_after: int | None,
    status: bool,
    pin: bool,
) -> None:
    """The steps of :func:`train` (its module docstring), reading batches from ``source``."""
    total = spec.train.steps
    ev = spec.eval.every
    t0, toks = time.perf_counter(), 0
    last_status = -STATUS_EVERY
    for step in bar:
        batch = source.batch(step)
        check_context(model, batch.n_pos)
        toks += int(batch.seq_len.sum())
        with tf32(dev, spec.train.tf32):
            loss = train_step(
                model, optimizer, spec, batch.to(dev, non_blocking=pin), step, forward=forward
            )
        done = step + 1
        if done % spec.train.log_every == 0 or done == total or done in save_steps:
            _check_finite(loss, done, spec)
        if done % spec.train.log_every == 0 or done == total:
            rows.append(
                pd.DataFrame(
                    [{"step": done, "kind": "loss", "task": "", "length": 0, "value": loss.item()}]
                )
            )
            bar.set_postfix(
                loss=f"{loss.item():.4f}", tok_s=f"{toks / (time.perf_counter() - t0):.0f}"
            )
        if (ev and done % ev == 0) or done in save_steps:
            rows.append(_eval_rows(model, spec, done))
        if done in save_steps:
            # Metrics first: a kill between the two writes then leaves metrics *ahead* of the
            # last checkpoint, and a resume drops the rows past it and recomputes them. In the
            # other order the rows between the previous and this checkpoint would be lost.
            write_parquet(run_dir / METRICS, _metrics(rows))
            save_checkpoint(run_dir, done, model, optimizer, extra={"loss": loss.item(), **extra})
        now = time.perf_counter()
        if status and (now - last_status >= STATUS_EVERY or done == total):
            last_status = now
            write_json(
                run_dir / STATUS,
                {"step": done, "total": total, "loss": loss.item(), "time": time.time(),
                 "sec_per_step": (now - t0) / (done - start)},
            )  # fmt: skip
        if stop_after is not None and done >= stop_after:
            break


def _check_finite(loss: Tensor, step: int, spec: TrainSpec) -> None:
    """Stop a run whose loss is NaN or infinite, before it writes a checkpoint or a metric.

    A diverged run otherwise trains to the end, writes checkpoints whose every answer is wrong
    and looks finished to every stage after it (a queue would export and ship it). Checked at
    the logging steps and before each checkpoint only, so a CUDA run is not synchronised with
    the host every step.
    """
    value = float(loss.item())
    if math.isfinite(value):
        return
    how = []
    if spec.train.autocast != "off":
        how.append(f"autocast = {spec.train.autocast!r}")
    if spec.train.compile:
        how.append("compile = true")
    hint = (
        f"; this run uses [train] {' and '.join(how)}: try it without (the settings only change "
        "how fast it runs)"
        if how
        else ""
    )
    raise InterpError(
        f"training diverged: loss is {value} at step {step} (spec {spec.name}); no checkpoint "
        f"was written at or after it{hint}"
    )


def _metrics(rows: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(rows, ignore_index=True)
    df = df.drop_duplicates(subset=["step", "kind", "task", "length"], keep="last")
    return df.astype({"step": "int64", "length": "int64", "value": "float64"})


def is_done(run_dir: str | Path) -> bool:
    """Whether a run directory holds a finished run."""
    return (Path(run_dir) / DONE).is_file()
