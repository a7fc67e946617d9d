"""Pretrained Llama-family language models as ``HookedTransformer``s, from a local directory.

The paper's last experiment fine-tunes checkpoints of a pretrained language model (SmolLM-360M
at several pretraining steps) on its tasks and finds that later checkpoints length-generalize
better. :func:`load` brings such a checkpoint into the package: a Hugging Face checkpoint
directory of a ``LlamaForCausalLM`` (SmolLM, TinyLlama, Llama ...) holding ``config.json``,
safetensors weights and a tokenizer becomes a TransformerLens ``HookedTransformer`` that every
other module (training, evaluation, head scoring, overlap) accepts, plus the model's own
tokenizer. Nothing is fetched from the Hugging Face hub.

**How the conversion is done.** TransformerLens does the mapping itself:
``convert_hf_model_config`` turns the Hugging Face config into TransformerLens's (RMSNorm,
gated SiLU MLP, rotary embeddings in the non-interleaved "GPT-NeoX" layout, grouped-query
attention when ``num_key_value_heads < num_attention_heads``) and
``convert_llama_weights`` renames and reshapes the weights. Two details keep this independent of
TransformerLens's list of official model names (which does not list SmolLM):

* the config is converted from a private copy of ``config.json`` in a temporary directory,
  because ``convert_hf_model_config`` guesses the architecture from the *name* when a path
  contains "llama" or "gemma" (and then has no config to read);
* the model is constructed from that config by :func:`interp.models.construct.construct` (the
  package's
  one model factory) and the weights are loaded without folding or centring, so the
  ``HookedTransformer`` computes what the Hugging Face model computes (the tests check the
  logits agree to 1e-4) and a fine-tuned state dict means the same as the original.

The tokenizer is loaded from the same directory with ``transformers.AutoTokenizer`` and attached
as ``model.tokenizer`` (TransformerLens's own slot for it); :mod:`interp.tasks.encoding` renders
the tasks
in its tokens. After fine-tuning, the input embedding and the unembedding are separate
parameters even where the original ties them (SmolLM does): they start equal and are trained
independently.

``transformers`` and ``tokenizers`` are an optional extra (``pip install -e ".[pretrained]"``)
and are imported only when a checkpoint is loaded.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig
from interp.models.construct import construct

try:  # transformers' strict config fields raise this (an Exception, neither ValueError nor
    # TypeError) for a field of the wrong type
    from huggingface_hub.errors import StrictDataclassError
except ImportError:  # pragma: no cover - older huggingface_hub
    StrictDataclassError = ValueError  # type: ignore[misc,assignment]

ARCHITECTURES = ("LlamaForCausalLM",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# The ModelConfig fields a pretrained checkpoint determines; a run's config records them and
# every later load checks the directory still has them.
ARCH_FIELDS = ("n_layers", "n_heads", "d_model", "d_mlp", "d_vocab", "rotary_base")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:  # pragma: no cover - transformer-lens itself depends on transformers
        raise InterpError(
            'loading a pretrained model needs transformers: pip install -e ".[pretrained]"'
        ) from None
    return transformers


def read_hf_config(path: str | Path) -> dict[str, Any]:
    """Check that ``path`` is a usable Llama-family checkpoint directory; return its config.

    Raises:
        InterpError: a missing directory or ``config.json``, an unreadable config, an
            architecture other than ``LlamaForCausalLM``, no tokenizer, or no safetensors
            weights (pickled ``pytorch_model.bin`` weights are refused, never unpickled).
    """
    d = Path(path)
    if not d.is_dir():
        raise InterpError(f"pretrained checkpoint directory not found: {d}")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise InterpError(f"{d} is not a Hugging Face checkpoint directory (no config.json)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"malformed {cfg_path}: {e}") from None
    if not isinstance(cfg, dict):
        raise InterpError(f"malformed {cfg_path}: not a JSON object")
    archs = cfg.get("architectures") or []
    if not isinstance(archs, list):
        archs = [archs]
    if not archs and cfg.get("model_type") == "llama":
        archs = ["LlamaForCausalLM"]
    if not any(a in ARCHITECTURES for a in archs):
        found = ", ".join(map(str, archs)) or f"model_type {cfg.get('model_type')!r}"
        raise InterpError(
            f"{d}: unsupported architecture {found}; interp loads Llama-family checkpoints "
            f"({', '.join(ARCHITECTURES)}, e.g. SmolLM)"
        )
    _check_numbers(cfg, cfg_path)
    head_dim = cfg.get("head_dim")
    hidden, heads = cfg.get("hidden_size"), cfg.get("num_attention_heads")
    if head_dim is not None and head_dim != hidden // heads:
        raise InterpError(
            f"{d}: head_dim={head_dim} differs from hidden_size / num_attention_heads; "
            "TransformerLens's Llama conversion does not support that"
        )
    scaling = cfg.get("rope_scaling") or {}
    kind = (scaling.get("rope_type") or scaling.get("type") or "default") if scaling else "default"
    if kind not in ("default", "llama3"):
        raise InterpError(f"{d}: RoPE scaling {kind!r} is not supported (default or llama3 only)")
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        raise InterpError(
            f"{d}: no tokenizer (expected one of {', '.join(TOKENIZER_FILES)}); the model's own "
            "tokenizer must be saved beside its weights"
        )
    if not any((d / f).is_file() for f in WEIGHT_FILES):
        if (d / "pytorch_model.bin").is_file():
            raise InterpError(
                f"{d}: only pickled weights (pytorch_model.bin); interp never unpickles, so "
                "convert them to model.safetensors first"
            )
        raise InterpError(f"{d}: no model.safetensors weights")
    _check_weights_header(d / WEIGHT_FILES[0])
    return cfg


# The config fields the conversion reads as numbers: (required, integer). A string where a
# number belongs ("2" from a hand-edited file) must be refused here, with the field's name,
# not deep inside transformers' config validation.
_NUMBER_FIELDS = {
    "hidden_size": (True, True),
    "num_attention_heads": (True, True),
    "num_hidden_layers": (True, True),
    "intermediate_size": (True, True),
    "vocab_size": (True, True),
    "num_key_value_heads": (False, True),
    "max_position_embeddings": (False, True),
    "head_dim": (False, True),
    "rope_theta": (False, False),
    "rms_norm_eps": (False, False),
}


def _check_numbers(cfg: dict[str, Any], cfg_path: Path) -> None:
    """Refuse a missing, non-numeric or non-positive architecture field of ``config.json``."""
    for key, (required, integer) in _NUMBER_FIELDS.items():
        v = cfg.get(key)
        if v is None and not required:
            continue
        ok = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok or not v > 0 or v != v or v == float("inf"):
            kind = "a positive integer" if integer else "a positive number"
            raise InterpError(f"{cfg_path}: {key} must be {kind}, got {v!r}")


def _check_weights_header(path: Path) -> None:
    """Refuse a truncated or garbled ``model.safetensors`` before anything is trained: its
    header must parse and cover the file (what safetensors checks on opening it)."""
    if not path.is_file():
        return  # sharded weights: each shard is checked when it is loaded
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as e:
        raise InterpError(f"corrupt weights {path}: {e}") from None


def hooked_config(
    path: str | Path,
    device: str | torch.device = "cpu",
    n_ctx: int | None = None,
) -> HookedTransformerConfig:
    """TransformerLens's config for the checkpoint at ``path`` (its own Llama mapping).

    Args:
        path: the checkpoint directory.
        device: where the model will live.
        n_ctx: context length (default: the checkpoint's ``max_position_embeddings``).
    """
    read_hf_config(path)
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    tmp = Path(tempfile.mkdtemp(prefix="interp-hf-config-"))
    try:
        if any(k in str(tmp).lower() for k in ("llama", "gemma")):
            raise InterpError(
                f"the temporary directory {tmp} has 'llama' or 'gemma' in its path, which "
                "TransformerLens mistakes for a model name; set TMPDIR elsewhere"
            )
        shutil.copyfile(Path(path) / "config.json", tmp / "config.json")
        try:
            d = convert_hf_model_config(str(tmp), local_files_only=True)
        except Exception as e:  # noqa: BLE001
            # A foreign file parsed by two foreign libraries: a field of the wrong type fails
            # anywhere in them (TypeError, IndexError, their own validation errors). Whatever
            # it is, the checkpoint's config is what the user must fix.
            msg = " ".join(str(e).split()) or type(e).__name__
            raise InterpError(f"{path}: TransformerLens cannot convert its config: {msg}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    d.update(
        model_name=Path(path).name,
        tokenizer_name=None,  # the tokenizer is attached by hand: never fetched by name
        init_weights=False,  # every weight is overwritten by the checkpoint's
        device=str(device),
        dtype=torch.float32,
        default_prepend_bos=False,
    )
    if n_ctx is not None:
        d["n_ctx"] = int(n_ctx)
    return HookedTransformerConfig.from_dict(d)


def model_config_dict(path: str | Path, n_ctx: int | None = None) -> dict[str, Any]:
    """The :class:`~interp.models.architecture.ModelConfig` fields of a checkpoint (what a run
    records)."""
    h = hooked_config(path, n_ctx=n_ctx)
    base = float(h.rotary_base)
    return {
        "n_layers": h.n_layers,
        "n_heads": h.n_heads,
        "d_model": h.d_model,
        "d_mlp": h.d_mlp,
        "positional": "rope",
        "norm": "rms",
        "mlp": "gated_silu",
        "n_ctx": h.n_ctx,
        "d_vocab": h.d_vocab,
        "rotary_base": int(base) if base.is_integer() else base,
        "pretrained": str(path),
    }


def load_tokenizer(path: str | Path) -> Any:
    """The checkpoint's own tokenizer (``transformers.AutoTokenizer``, local files only)."""
    read_hf_config(path)
    tf = _transformers()
    try:
        return tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise InterpError(f"{path}: cannot load its tokenizer: {e}") from None


def load(
    path: str | Path,
    device: str | torch.device = "cpu",
    n_ctx: int | None = None,
) -> tuple[HookedTransformer, Any]:
    """Load a local Llama-family checkpoint as a ``HookedTransformer`` and its tokenizer.

    Args:
        path: a Hugging Face checkpoint directory (``config.json``, safetensors weights,
            tokenizer files).
        device: where the model goes (``cuda`` on a GPU).
        n_ctx: context length (default: the checkpoint's ``max_position_embeddings``).

    Returns:
        ``(model, tokenizer)``: the model in eval mode, in float32, with the tokenizer also
        attached as ``model.tokenizer``.

    Raises:
        InterpError: for anything :func:`read_hf_config` refuses, or weights that do not load.
    """
    hcfg = hooked_config(path, device, n_ctx)
    tokenizer = load_tokenizer(path)
    tf = _transformers()
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise here
    try:
        hf = tf.LlamaForCausalLM.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32
        )
    except (ValueError, OSError, RuntimeError, SafetensorError, StrictDataclassError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InterpError(f"{path}: cannot load its weights: {msg}") from None
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    with torch.no_grad():
        state_dict = {k: v.detach().clone() for k, v in convert_llama_weights(hf, hcfg).items()}
    del hf
    model = construct(hcfg, state_dict)
    # Assigned directly rather than through HookedTransformer.set_tokenizer, which would
    # re-load the tokenizer by name (with add_bos_token) and could reach for the hub.
    model.tokenizer = tokenizer
    model.eval()
    return model, tokenizer


def load_for_config(cfg: ModelConfig, device: str | torch.device = "cpu") -> HookedTransformer:
    """The model of a run whose config has ``pretrained`` set (used by the model factory).

    Raises:
        InterpError: if the directory's architecture no longer matches the one the run
            recorded (the checkpoint was replaced).
    """
    model, _ = load(cfg.pretrained, device, n_ctx=cfg.n_ctx)
    have = {
        "n_layers": model.cfg.n_layers,
        "n_heads": model.cfg.n_heads,
        "d_model": model.cfg.d_model,
        "d_mlp": model.cfg.d_mlp,
        "d_vocab": model.cfg.d_vocab,
        "rotary_base": float(model.cfg.rotary_base),
    }
    want = {k: getattr(cfg, k) for k in ARCH_FIELDS}
    want["rotary_base"] = float(want["rotary_base"])
    diff = [f"{k}={want[k]} (recorded) vs {have[k]}" for k in ARCH_FIELDS if want[k] != have[k]]
    if diff:
        raise InterpError(
            f"pretrained checkpoint {cfg.pretrained} no longer matches the run's config: "
            + ", ".join(diff)
        )
    return model
