"""Where a model runs: device names, ``auto``, mixed precision, batch sizes, Ray GPU requests.

A *device string* is what a user writes (``--device``, ``[train] device``): ``auto``, ``cpu``,
``cuda``, ``cuda:N`` or ``mps``. :func:`parse_device` checks the spelling without touching any
hardware; :func:`resolve_device` turns it into a ``torch.device`` on *this* machine, where
``auto`` means the first CUDA GPU when one is visible and the CPU otherwise (MPS is never picked
automatically: it lacks some of the operations and the float64 support the analyses use).
Asking for a device the machine does not have is an :class:`~interp.core.errors.InterpError`, never
a
silent fallback, so a run cannot end up on the CPU for days by accident.

Resolution happens where the model is built: in the training process, in the sweep's worker
(a Ray worker resolves ``auto`` to the GPU Ray gave it, whatever the driver machine has; a local
pool gives each worker its own GPU, :mod:`interp.runs.executors`). Models are placed with
:func:`place_model`, which keeps the GPU index (``cuda:1``) that TransformerLens's own move drops.

**Every tensor names its device.** The package never relies on the default device: data are
built on the CPU, index and mask tensors are made where they are used, scores are written into
tables on the device where they were computed and brought to the CPU once
(``tests/test_cross_device.py`` checks every stage for tensors made without ``device=``).

**Feeding a GPU.** Training batches are made ahead in a thread on CUDA (``[train] prefetch``,
:func:`prefetch_enabled`; the stream is identical), copied from pinned memory without blocking,
and the CUDA loss needs no host sync; ``[train] tf32`` lets the training step's float32 matmuls
run in TF32 (:func:`tf32`).

**Checkpoints are device-independent.** Tensors are saved from the CPU and loaded straight onto
the target device (:func:`interp.models.checkpoint.load_tensors`' ``device``, the safetensors
analogue
of ``map_location``), so a run trained on a GPU loads and resumes on a CPU and
the other way round.

**Mixed precision** (``[train] autocast = "bf16"``) runs the training forward pass under
``torch.autocast(dtype=torch.bfloat16)``: on a CUDA GPU with native bfloat16 (Ampere or newer;
emulated bf16 on older cards is slower than float32, so it counts as unsupported there and the
option is off), and on a CPU with bfloat16 matrix instructions (AVX-512-BF16 or AMX-BF16, see
:func:`cpu_bf16_supported`). Parameters, gradients, optimizer state, the loss and checkpoints
stay float32. Asking for ``bf16`` on a CPU without those instructions, or on MPS, is a one-line
:class:`~interp.core.errors.InterpError` at the start of training, never a silent float32 (or a
silent
emulated, several-times-slower bf16) run. Evaluation and head scoring always run in float32:
exact match is a verdict on argmaxes, and bf16 rounding could flip near-ties (measured in
BENCHMARKS.md).

**Determinism.** On CUDA, training turns on ``torch.use_deterministic_algorithms`` strictly (an
operation without a deterministic kernel raises; :func:`deterministic`), with the cuBLAS
workspace setting it requires set when the package is imported, so the same spec on the same GPU
model and software stack gives the same weights, and a killed run resumes to exactly the weights
of an uninterrupted one. Across devices only the data stream, weights and optimizer state carry over
exactly; the arithmetic differs (kernels, reduction order, bf16), so results agree up to float
rounding that grows over training, not bit for bit.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from interp.core import startup
from interp.core.errors import InterpError, unknown_choice

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
AUTOCAST = ("off", "bf16")
PREFETCH = ("auto", "on", "off")
CPU_BATCH = 512
"""Rows per forward pass for evaluation and head scoring on a CPU (cache-friendly chunks)."""
GPU_BATCH = 4096
"""Rows per forward pass on a GPU: a 1024-example evaluation set in one pass, and all 6 heads of
a paper-preset layer for ~680 examples in one replicated pass; sized so that attribution
patching's backward graph still fits a 24 GB card. ``--batch-size`` raises it on larger ones."""

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def parse_device(text: str | None) -> str:
    """Validate a device string (``None`` and ``""`` mean ``auto``); returns it normalised.

    Raises:
        InterpError: for anything but ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return "auto"
    if not isinstance(text, str) or not _DEVICE_RE.match(text.strip().lower()):
        raise InterpError(
            f"unknown device {text!r}; valid choices: auto, cpu, cuda, cuda:N (N = GPU index), mps"
        )
    return text.strip().lower()


def resolve_device(text: str | torch.device | None = None) -> torch.device:
    """The ``torch.device`` a device string means on this machine.

    Args:
        text: a device string (see :func:`parse_device`) or a ``torch.device``.

    Raises:
        InterpError: an unknown spelling, or a device this machine does not have.
    """
    if isinstance(text, torch.device):
        text = str(text)
    name = parse_device(text)
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise InterpError("device 'mps' requested but MPS is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise InterpError(
            f"device {name!r} requested but CUDA is not available on this machine "
            "(use --device cpu or auto)"
        )
    index = int(name.split(":")[1]) if ":" in name else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise InterpError(f"device {name!r} requested but this machine has {count} CUDA GPU(s)")
    return torch.device("cuda", index)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def place_model(model: HookedTransformer, device: str | torch.device) -> HookedTransformer:
    """Move a ``HookedTransformer`` to ``device`` and record the *full* device in its config.

    TransformerLens's ``model.to(torch.device("cuda", 1))`` stores only the device type
    (``cfg.device = "cuda"``), and its forward pass then moves the residual stream to
    ``get_device_for_block_index(i, cfg)``, i.e. ``cuda:0``: a model on ``cuda:1`` would fail
    (or silently run half on another GPU). Keeping ``cfg.device = "cuda:1"`` makes every such
    move a no-op on the model's own device.
    """
    dev = torch.device(device)
    model.to(dev, print_details=False)
    model.cfg.device = str(dev)
    return model


def check_autocast(mode: str) -> str:
    """Validate an ``autocast`` setting (``off`` or ``bf16``)."""
    if mode not in AUTOCAST:
        raise unknown_choice("autocast", mode, AUTOCAST)
    return mode


def check_prefetch(mode: str) -> str:
    """Validate a ``prefetch`` setting (``auto``, ``on`` or ``off``)."""
    if mode not in PREFETCH:
        raise unknown_choice("prefetch", mode, PREFETCH)
    return mode


def prefetch_enabled(device: torch.device, mode: str | bool | None) -> bool:
    """Whether training batches are made ahead in a thread
    (:class:`interp.tasks.batches.Prefetcher`).

    ``auto`` (or None) means on CUDA only: there the batch would otherwise be made while the
    GPU waits; on a CPU the thread competes with the training for the cores (a sweep runs one
    single-threaded cell per core), so it is off unless asked for (``on``, or True).
    """
    if isinstance(mode, bool):
        return mode
    mode = check_prefetch("auto" if mode is None else mode)
    return device.type == "cuda" if mode == "auto" else mode == "on"


@contextmanager
def tf32(device: torch.device, enabled: bool) -> Iterator[None]:
    """TF32 float32 matmuls (and cuDNN convolutions) on CUDA while inside; restored on exit.
    A no-op off CUDA or when not ``enabled``."""
    if device.type != "cuda" or not enabled:
        yield
        return
    was = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = was


def cpu_bf16_supported() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX-512-BF16 or AMX-BF16).

    Without them PyTorch still runs bfloat16 on the CPU, but by conversion to float32 and back,
    which is slower than float32 itself; so ``bf16`` autocast is only offered where the
    hardware multiplies bfloat16 natively.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name)() for name in probes if hasattr(torch.cpu, name))
    except Exception:  # private torch probes: fall back to the kernel's CPU flags
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_flags() -> set[str]:
    """The kernel's CPU flags (``/proc/cpuinfo``), empty where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    m = re.search(r"^flags\s*:(.*)$", text, flags=re.M)
    return set(m.group(1).split()) if m else set()


def compile_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(model)``, with Inductor's CPU code held to 256-bit vectors on CPUs that
    have AVX512-FP16.

    Measured 2026-12-06 on an Intel Xeon with AMX and AVX512-FP16 (torch 2.13.0+cpu): the zoo
    recipe with bf16 autocast, compiled with Inductor's default 512-bit CPU vectors, gave a NaN
    loss within the first steps of every run with auxiliary tasks (first at step 3, when a new
    sequence length compiled), while eager bf16 and the same compile with 256-bit vectors
    (``torch._inductor.config.cpp.simdlen = 256``) trained normally. The earlier machines (AMD
    EPYC, no AVX512-FP16) never showed it. The setting is process-wide and changes how fast a
    run executes, not what it computes (:data:`interp.runs.spec.EXECUTION_KEYS`); the training
    loop also stops any run whose loss is not finite.
    """
    if device.type == "cpu" and "avx512_fp16" in cpu_flags():
        import torch._inductor.config as inductor_config

        inductor_config.cpp.simdlen = 256
    return torch.compile(model)


def cuda_bf16_supported() -> bool:
    """Whether the current CUDA GPU multiplies bfloat16 natively (emulation does not count)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # an older torch without the keyword
        return torch.cuda.is_bf16_supported()


def autocast_enabled(device: torch.device, mode: str) -> bool:
    """Whether ``mode`` turns bfloat16 autocast on for ``device``.

    ``off`` never does. ``bf16`` does on a CPU with bfloat16 matrix instructions
    (:func:`cpu_bf16_supported`) and on a CUDA GPU with native bfloat16; on a CUDA GPU that only
    emulates it the option is off (float32 is faster there, and the numbers are the float32 ones).

    Raises:
        InterpError: ``bf16`` on a CPU without bfloat16 matrix instructions, or on MPS: the
            run would be several times slower than float32, or not bfloat16 at all.
    """
    check_autocast(mode)
    if mode != "bf16":
        return False
    if device.type == "cuda":
        return cuda_bf16_supported()
    if device.type == "cpu" and cpu_bf16_supported():
        return True
    what = "this CPU has no bfloat16 matrix instructions (AVX-512-BF16 or AMX-BF16)"
    if device.type != "cpu":
        what = f"bf16 autocast is not supported on {device.type!r}"
    raise InterpError(f"[train] autocast = 'bf16' cannot run here: {what}; set autocast = 'off'")


def autocast_context(device: torch.device, mode: str) -> AbstractContextManager[Any]:
    """``torch.autocast`` to bfloat16 when :func:`autocast_enabled`, otherwise a no-op."""
    if autocast_enabled(device, mode):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def default_batch_size(device: torch.device) -> int:
    """Rows per forward pass for evaluation and scoring: :data:`GPU_BATCH` on CUDA, else
    :data:`CPU_BATCH`."""
    return GPU_BATCH if device.type == "cuda" else CPU_BATCH


DETERMINISTIC_ENV = "INTERP_DETERMINISTIC"
"""Environment variable: ``strict`` (default) or ``warn`` (see :func:`deterministic`)."""


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training on CUDA (a no-op elsewhere); restored on exit.

    ``torch.use_deterministic_algorithms(True)`` is strict: an operation without a
    deterministic CUDA kernel raises instead of silently making the run irreproducible. The
    training step is built from operations that have deterministic CUDA kernels (matmuls, the
    embedding's indexing backward, whose accumulating index-put has a deterministic path, and a
    2-D ``cross_entropy``; by PyTorch's list, not yet seen on a GPU here:
    ``benchmarks/gpu_check.sh`` trains under it). ``INTERP_DETERMINISTIC=warn`` downgrades
    the error to PyTorch's warning (a run that must go on; its weights are then not guaranteed
    to be reproducible).

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS creates its first handle (PyTorch
    reads it once); ``import interp`` sets it (:mod:`interp.core.startup`), which in the
    ``interp`` command, a sweep worker or a Ray task is before any CUDA work. If CUDA was
    initialised before the package was imported (a notebook that used the GPU first), the
    setting may have come too late, and a warning says so.

    Raises:
        InterpError: ``INTERP_DETERMINISTIC`` set to anything but ``strict`` or ``warn``.
    """
    if device.type != "cuda":
        yield
        return
    mode = os.environ.get(DETERMINISTIC_ENV, "strict").strip().lower() or "strict"
    if mode not in ("strict", "warn"):
        raise unknown_choice(DETERMINISTIC_ENV, mode, ("strict", "warn"))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if startup.CUDA_BEFORE_IMPORT and not startup.CUBLAS_SET_BY_USER:
        warnings.warn(
            "CUDA was initialised before interp was imported, so CUBLAS_WORKSPACE_CONFIG may "
            "have been set too late for deterministic cuBLAS; set it in the environment (e.g. "
            "CUBLAS_WORKSPACE_CONFIG=:4096:8) before starting Python",
            RuntimeWarning,
            stacklevel=3,
        )
    was, was_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=mode == "warn")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)


def check_gpu_fraction(gpus: float) -> float:
    """Validate GPUs per sweep cell: a fraction in ``(0, 1]`` or a whole number of GPUs."""
    ok = isinstance(gpus, int | float) and not isinstance(gpus, bool) and gpus > 0
    if ok and gpus > 1:
        ok = float(gpus).is_integer()
    if not ok:
        raise InterpError(
            f"GPUs per cell must be a fraction in (0, 1] or a whole number, got {gpus!r}"
        )
    return float(gpus)


def wants_gpu(device: str | None, cluster_gpus: float = 0.0) -> bool:
    """Whether a sweep cell on ``device`` should be scheduled on a GPU: ``cuda``/``cuda:N``
    always, ``auto`` when the cluster has GPUs, ``cpu``/``mps`` never."""
    name = parse_device(device)
    return name.startswith("cuda") or (name == "auto" and cluster_gpus > 0)


def ray_resources(
    device: str | None, gpus_per_cell: float = 1.0, cluster_gpus: float = 0.0
) -> dict[str, Any]:
    """Options for ``ray.remote`` for one sweep cell.

    Every cell asks for one CPU (its one torch thread). A cell that runs on CUDA (see
    :func:`wants_gpu`) also asks for ``gpus_per_cell`` GPUs; with a fraction, e.g. 0.25, Ray
    packs four cells onto each GPU, which suits small models that cannot fill a GPU alone. Ray
    then sets ``CUDA_VISIBLE_DEVICES`` in the worker, where ``auto``/``cuda`` pick that GPU.

    Args:
        device: the cells' device string.
        gpus_per_cell: GPUs (or a fraction of one) per cell.
        cluster_gpus: GPUs the Ray cluster has (``ray.cluster_resources().get("GPU", 0)``).

    Raises:
        InterpError: an unknown device, a bad fraction, or a CUDA device on a cluster without
            GPUs (the cells would wait forever for a GPU that never comes).
    """
    gpus = check_gpu_fraction(gpus_per_cell)
    opts: dict[str, Any] = {"num_cpus": 1, "max_retries": 0}
    if wants_gpu(device, cluster_gpus):
        if cluster_gpus <= 0:
            raise InterpError(
                f"device {parse_device(device)!r} requested but the Ray cluster has no GPUs"
            )
        opts["num_gpus"] = gpus
    return opts
