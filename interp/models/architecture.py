"""The architecture of a model: :class:`ModelConfig`, its presets, and the TransformerLens
config it maps to.

Architectures follow the paper: a Llama-style decoder (RMSNorm, gated SiLU MLP) with one of three
positional schemes:

* ``rope``: rotary embeddings on every head dimension (TransformerLens ``"rotary"``). Its sin/cos
  table is built for ``n_ctx`` positions and TransformerLens does not guard the overflow, so
  :func:`interp.tasks.batches.check_context` refuses longer inputs before they reach the model.
* ``nope``: no positional information at all. This is a ``"standard"`` model whose ``W_pos`` is
  zeroed and frozen (``requires_grad=False``), so the optimizer never touches it and it stays zero.
* ``learned``: ordinary learned absolute positions (``W_pos`` trained).

The model itself is built by :func:`interp.models.factory.build_model`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from interp.core.config import check_fields
from interp.core.errors import InterpError
from interp.core.resources import presets_dir
from interp.tasks.vocab import VOCAB

if TYPE_CHECKING:
    from transformer_lens import HookedTransformerConfig

__all__ = ["ModelConfig", "hooked_config", "list_presets", "load_preset"]

POSITIONAL = ("rope", "nope", "learned")
NORMS = ("rms", "ln")
MLPS = ("gated_silu", "gelu")
PRESET_DIR = presets_dir()
"""Where presets are read (``models/presets``; see :mod:`interp.core.resources`)."""


# Upper bounds catch typos before they exhaust memory; they are far above any model here.
_MAX_SIZE = {
    "n_layers": 1024,
    "n_heads": 1024,
    "d_model": 65536,
    "d_mlp": 262144,
    "n_ctx": 65536,
    "d_vocab": 1_000_000,
}


@dataclass
class ModelConfig:
    """Architecture of a decoder-only model.

    Attributes:
        n_layers: transformer blocks.
        n_heads: attention heads per block.
        d_model: residual-stream width; ``d_head = d_model // n_heads``.
        d_mlp: MLP hidden width (``None``: ``4 * d_model``).
        positional: ``rope``, ``nope`` or ``learned``.
        norm: ``rms`` (Llama) or ``ln`` (LayerNorm).
        mlp: ``gated_silu`` (Llama) or ``gelu``.
        n_ctx: longest sequence, in tokens, the model accepts (``<bos>`` included).
        d_vocab: vocabulary size (the shared vocabulary by default).
        rotary_base: RoPE base frequency.
        init_seed: seed for weight initialisation.
        pretrained: a local Hugging Face Llama-family checkpoint directory to start from
            (:mod:`interp.models.pretrained`); empty for a freshly initialised model. With it set,
            the
            architecture fields above are read from the checkpoint's ``config.json`` (they are
            kept in the run's config as a record and checked again at every load).
    """

    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    d_mlp: int | None = None
    positional: str = "rope"
    norm: str = "rms"
    mlp: str = "gated_silu"
    n_ctx: int = 128
    d_vocab: int = len(VOCAB)
    rotary_base: int = 10_000
    init_seed: int = 0
    pretrained: str = ""

    def __post_init__(self) -> None:
        self.validate()

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def validate(self) -> None:
        """Raise :class:`InterpError` on an impossible (or absurdly large) architecture."""
        for name, hi in _MAX_SIZE.items():
            v = getattr(self, name)
            if name == "d_mlp" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                raise InterpError(f"model config: {name} must be an integer in 1..{hi}, got {v!r}")
        rb = self.rotary_base
        # rotary_base <= 1 makes every RoPE frequency 1 (or NaN): training silently yields NaNs.
        if isinstance(rb, bool) or not isinstance(rb, int | float) or not 1 < rb <= 1e12:
            raise InterpError(
                f"model config: rotary_base must be a number in (1, 1e12], got {rb!r}"
            )
        s = self.init_seed
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32:
            raise InterpError(
                f"model config: init_seed must be an integer in 0..{2**32 - 1}, got {s!r}"
            )
        if self.d_model % self.n_heads:
            raise InterpError(
                f"model config: d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        if self.positional not in POSITIONAL:
            raise InterpError(f"model config: positional must be one of {POSITIONAL}")
        if self.norm not in NORMS:
            raise InterpError(f"model config: norm must be one of {NORMS}")
        if self.mlp not in MLPS:
            raise InterpError(f"model config: mlp must be one of {MLPS}")
        if self.positional == "rope" and self.d_head % 2:
            raise InterpError("model config: RoPE needs an even d_head")
        if not isinstance(self.pretrained, str):
            raise InterpError("model config: pretrained must be a directory path (a string)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Omitted when unset so that the config.json of every from-scratch run written before
        # the field existed still equals its spec's dict (a resume compares the two exactly).
        if not self.pretrained:
            d.pop("pretrained")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys and wrongly typed values with a readable
        error (:func:`interp.core.config.check_fields`)."""
        if not isinstance(d, dict):
            raise InterpError(f"model config must be a table/dict, got {type(d).__name__}")
        check_fields(cls, d, "model config")
        try:
            return cls(**d)
        except TypeError as e:
            raise InterpError(f"model config: {e}") from None


def load_preset(name: str) -> dict[str, Any]:
    """Read a model preset from ``models/presets/NAME.json`` as a dict of config fields."""
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        names = sorted(p.stem for p in PRESET_DIR.glob("*.json"))
        raise InterpError(f"unknown model preset {name!r}; valid choices: {', '.join(names)}")
    d = json.loads(path.read_text())
    d.pop("_comment", None)
    return d


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def hooked_config(cfg: ModelConfig, device: str | torch.device = "cpu") -> HookedTransformerConfig:
    """Translate a :class:`ModelConfig` into TransformerLens's config."""
    # imported here: TransformerLens takes seconds to load, and reading a spec or listing the
    # zoo never builds a model
    from transformer_lens import HookedTransformerConfig

    rope = cfg.positional == "rope"
    return HookedTransformerConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp or 4 * cfg.d_model,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn="silu" if cfg.mlp == "gated_silu" else "gelu",
        gated_mlp=cfg.mlp == "gated_silu",
        normalization_type="RMS" if cfg.norm == "rms" else "LN",
        positional_embedding_type="rotary" if rope else "standard",
        rotary_dim=cfg.d_head if rope else None,
        rotary_base=cfg.rotary_base,
        seed=cfg.init_seed,
        default_prepend_bos=False,
        original_architecture="interp",
        device=str(device),
    )


def check_head(cfg: Any, layer: Any, head: Any) -> tuple[int, int]:
    """``(layer, head)`` as ints, or one clear error if the head is not in the model.

    The one home of the check every stage that names heads makes (ablation, attention patterns,
    head sets).

    Args:
        cfg: the model's config (``model.cfg``: anything with ``n_layers`` and ``n_heads``).
        layer: layer index.
        head: head index within the layer.

    Raises:
        InterpError: an index that is not an integer or lies outside the model.
    """
    try:
        lh = (int(layer), int(head))
    except (TypeError, ValueError):
        raise InterpError(
            f"a head is a (layer, head) pair of integers, got {(layer, head)!r}"
        ) from None
    n_layers, n_heads = cfg.n_layers, cfg.n_heads
    if not (0 <= lh[0] < n_layers and 0 <= lh[1] < n_heads):
        raise InterpError(
            f"head ({lh[0]}, {lh[1]}) is outside the model's {n_layers} layers x {n_heads} heads"
        )
    return lh
