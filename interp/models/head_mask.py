"""Per-task head masks: a training-time intervention on which attention heads a task may use.

The paper's evidence that length-generalization transfer runs through shared attention heads is
correlational (tasks whose head maps overlap transfer more). This module makes sharing a
*controlled variable*: a run's spec may give any task a list of heads,

.. code-block:: toml

    [[tasks]]
    name = "reverse_add"
    lengths = [1, 6]
    heads = [0, 1]          # this task's examples use heads 0 and 1 of every layer, only

and every example of that task then runs with the other heads' outputs zeroed, in training (so
those heads get no gradient from it) and in every later forward pass of the model. A task without
``heads`` uses all heads. Two designs built on it (``models/zoo/specs/r4_disjoint_s*.toml`` and
``r4_shared_s*.toml``; ``docs/intervention.md``):

* ``disjoint``: the main task uses heads {0, 1}, the auxiliaries heads {2, 3}: no head can be
  shared, while the MLPs, embeddings and unembedding still are;
* ``shared``: every task uses heads {0, 1}: the same per-task attention capacity, sharing forced.

**How a row finds its task.** Every prompt starts with its task-identity token (``<add>``,
``<nocarry>``, ...; :mod:`interp.tasks.vocab`), at position 1 after ``<bos>``. The mask is part of
the model: a permanent hook on ``hook_tokens`` reads each row's token at position 1 and looks up
the heads that row may use; permanent hooks on every layer's ``hook_z`` then zero the other
heads' ``z`` for that row (``torch.where``, so a zeroed head contributes exactly nothing forward
and exactly zero gradient to its ``W_Q``, ``W_K``, ``W_V`` and ``W_O`` from that row). Because
the mask lives in the model, a mixed training batch, the per-task evaluation batches, greedy
generation, head scoring and anything else that calls the model are masked alike, with no caller
passing task names around. A row whose position-1 token is no masked task's token (a task the run
did not mask, or did not train) uses every head.

**Forwards that start from the residual stream** (``start_at_layer``; the head scorers rerun
upper layers that way, and :class:`interp.models.fast_forward.LeanStack` does the same with fused
kernels) see no
tokens. They use the mask of the model's last token forward when that forward's rows were all of
one task (the scorers work one layout group, hence one task, at a time, and rerun right after the
group's clean pass), and are refused when it mixed tasks with a different row count.

**Head scoring on a masked model.** The mask hooks are prepended, so caches, reference means and
ablation hooks all see the masked ``z``: a head masked for a task has ``z = 0`` on its rows, its
mean is 0, and mean ablation, zero ablation and same-task activation patching of it change
nothing (score 0: exactly for exact match, to float rounding for the log-probability, which
the lean rerun recomputes). Cross-task interchange patching (:mod:`interp.causal.interchange`)
writes a
head's ``z`` from another task's run, which the mask cannot police; it is refused on a masked
model. A masked head's attention pattern is still computed (the mask acts on its output), so
attention plots show patterns the head's task never reads. Head-set ablation
(:mod:`interp.causal.set_trie`) keeps its fast path: it reads each layer's ``z`` through the
model's own
attention, masks applied (:func:`other_hooks`). Training with ``[train] compile`` and masks on a
``pretrained`` model (whose tokenizer may spell a task token in several tokens) are refused when
the spec is read.

A model built without masks has no hook at all (the tests check this), so every run without
``heads`` trains and evaluates bit for bit as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.core.errors import InterpError
from interp.tasks import get_task
from interp.tasks.vocab import VOCAB

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

__all__ = [
    "ATTR",
    "TASK_TOKEN_POS",
    "HeadMask",
    "check_spec_heads",
    "get_mask",
    "install",
    "other_hooks",
    "parse_heads",
    "refuse_masked",
]

ATTR = "interp_head_mask"
"""Attribute of a masked model that holds its :class:`HeadMask`."""
TASK_TOKEN_POS = 1
"""Position of the task-identity token: ``<bos>`` is position 0."""


def parse_heads(value: object, task: str) -> tuple[int, ...]:
    """Check a ``[[tasks]] heads`` value's form (the range is checked against the model later).

    Raises:
        InterpError: unless ``value`` is a non-empty list of distinct non-negative integers.
    """
    where = f"spec: task {task!r}: heads"
    if not isinstance(value, list | tuple):
        raise InterpError(f"{where} must be a list of head indices, e.g. [0, 1], got {value!r}")
    if not value:
        raise InterpError(f"{where} is empty: a task needs at least one head (omit it for all)")
    for h in value:
        if isinstance(h, bool) or not isinstance(h, int) or h < 0:
            raise InterpError(f"{where} must hold non-negative integers, got {h!r}")
    if len(set(value)) != len(value):
        dup = sorted({h for h in value if list(value).count(h) > 1})
        raise InterpError(f"{where} lists head(s) {dup} more than once")
    return tuple(sorted(int(h) for h in value))


def check_spec_heads(
    task_heads: Mapping[str, Sequence[int]], n_heads: int, pretrained: bool, compile_: bool
) -> None:
    """The checks that need the resolved model: head range, pretrained, compile.

    Raises:
        InterpError: a head index ``>= n_heads``, masks on a pretrained model, or with compile.
    """
    if not task_heads:
        return
    for task, heads in task_heads.items():
        bad = [h for h in heads if h >= n_heads]
        if bad:
            raise InterpError(
                f"spec: task {task!r}: heads {bad} out of range: the model has n_heads={n_heads} "
                f"(heads 0..{n_heads - 1})"
            )
    if pretrained:
        raise InterpError(
            "spec: [[tasks]] heads cannot be used with [model] pretrained (its tokenizer may "
            "spell a task token in several tokens, so a row's task is not known)"
        )
    if compile_:
        raise InterpError(
            "spec: [[tasks]] heads cannot be combined with [train] compile = true (the masks "
            "keep each batch's rows in Python hooks, untested under torch.compile); set "
            "compile = false"
        )


@dataclass
class HeadMask:
    """The masks installed on one model, and the rows of its latest token forward.

    Attributes:
        task_heads: heads each masked task may use (tasks not listed use all).
        n_heads: heads per layer.
        table: keep-mask per token id (the token at :data:`TASK_TOKEN_POS`); all True except for
            the task tokens of masked tasks.
        rows: keep-mask of each row of the latest token forward (None before the first).
        uniform: that forward's one keep-mask when all its rows share it, else None.
        hook_fns: the mask's own hook functions (:func:`other_hooks` tells them apart).
    """

    task_heads: dict[str, tuple[int, ...]]
    n_heads: int
    table: Bool[Tensor, "d_vocab head"]
    rows: Bool[Tensor, "batch head"] | None = None
    uniform: Bool[Tensor, " head"] | None = None
    hook_fns: tuple[Callable[..., Any], ...] = ()
    _tables: dict[torch.device, Bool[Tensor, "d_vocab head"]] = field(
        default_factory=dict, repr=False
    )

    def keep_for_task(self, task: str) -> Bool[Tensor, " head"]:
        """The heads ``task``'s rows use (all heads for a task without a mask)."""
        keep = torch.ones(self.n_heads, dtype=torch.bool, device="cpu")
        if task in self.task_heads:
            keep[:] = False
            keep[list(self.task_heads[task])] = True
        return keep

    def see_tokens(self, tokens: Int[Tensor, "batch pos"]) -> None:
        """Record the per-row masks of a token forward (the ``hook_tokens`` hook)."""
        dev = tokens.device
        if dev not in self._tables:
            self._tables[dev] = self.table.to(dev)
        table = self._tables[dev]
        if tokens.shape[1] <= TASK_TOKEN_POS:  # no task token: every head
            rows = torch.ones(tokens.shape[0], self.n_heads, dtype=torch.bool, device=dev)
        else:
            rows = table[tokens[:, TASK_TOKEN_POS]]
        self.rows = rows
        one = len(rows) > 0 and bool((rows == rows[:1]).all())
        self.uniform = rows[0] if one else None

    def keep(self, n_rows: int) -> Bool[Tensor, "rows_or_1 head"] | None:
        """The keep-mask for a forward over ``n_rows`` rows: per row after a token forward of
        that many rows, broadcast when the latest token forward was one task; None when every
        head is kept (nothing to zero).

        Raises:
            InterpError: before any token forward, or after a mixed-task one of another size.
        """
        if self.rows is None:
            raise InterpError(
                "this model trains with per-task head masks and was run from the residual "
                "stream before any token input, so the rows' task is unknown"
            )
        if self.uniform is not None:
            return None if bool(self.uniform.all()) else self.uniform[None]
        if self.rows.shape[0] == n_rows:
            return self.rows
        raise InterpError(
            "this model trains with per-task head masks: a forward from the residual stream "
            f"({n_rows} rows) must follow a token forward of one task, not of mixed tasks"
        )

    def apply(
        self, z: Float[Tensor, "batch pos head d_head"]
    ) -> Float[Tensor, "batch pos head d_head"]:
        """``z`` with the masked heads' entries zeroed (``z`` itself when nothing is masked)."""
        keep = self.keep(z.shape[0])
        if keep is None:
            return z
        return torch.where(keep.to(z.device)[:, None, :, None], z, z.new_zeros(()))


def get_mask(model: HookedTransformer) -> HeadMask | None:
    """The model's :class:`HeadMask`, or None for an unmasked model."""
    return getattr(model, ATTR, None)


def other_hooks(model: HookedTransformer) -> bool:
    """Whether a forward hook other than the head masks' own is attached to ``model``.

    Code that calls a block's parts directly (the head-set trie's fast path) must refuse a model
    with someone else's hooks, but keeps working with the masks: the masked ``z`` it reads from
    ``hook_z`` is the model's own.
    """
    mask = get_mask(model)
    own = () if mask is None else mask.hook_fns
    return any(h.user_hook not in own for hp in model.hook_dict.values() for h in hp.fwd_hooks)


def refuse_masked(model: HookedTransformer, what: str) -> None:
    """Refuse an analysis that cannot honour per-task head masks.

    Raises:
        InterpError: when ``model`` has masks.
    """
    if get_mask(model) is not None:
        raise InterpError(
            f"{what} is not supported on a model trained with per-task head masks "
            "([[tasks]] heads): it writes heads' outputs across tasks, past the masks"
        )


def install(model: HookedTransformer, task_heads: Mapping[str, Sequence[int]]) -> HeadMask:
    """Install ``task_heads`` on a freshly built model (called by the model factory only).

    The model must have been built with ``use_hook_tokens``
    (:func:`interp.models.factory.build_model`
    sets it when there are masks).

    Raises:
        InterpError: for an unknown task or a head index out of range.
    """
    # imported here: a spec that names head masks is read without building a model
    from transformer_lens.hook_points import HookPoint
    from transformer_lens.utilities import get_act_name

    n_heads = model.cfg.n_heads
    if not isinstance(getattr(model, "hook_tokens", None), HookPoint):
        raise InterpError("head masks need a model built with use_hook_tokens (build_model)")
    heads = {str(t): tuple(sorted(int(h) for h in hs)) for t, hs in task_heads.items()}
    check_spec_heads(heads, n_heads, pretrained=False, compile_=False)
    # Built on the CPU; HeadMask.see_tokens keeps one copy per device the model runs on.
    table = torch.ones(model.cfg.d_vocab, n_heads, dtype=torch.bool, device="cpu")
    mask = HeadMask(heads, n_heads, table)
    for task in heads:
        table[VOCAB.encode([get_task(task).token])[0]] = mask.keep_for_task(task)

    def on_tokens(tokens: Int[Tensor, "batch pos"], hook: HookPoint) -> None:
        mask.see_tokens(tokens)

    def on_z(
        z: Float[Tensor, "batch pos head d_head"], hook: HookPoint
    ) -> Float[Tensor, "batch pos head d_head"]:
        return mask.apply(z)

    # Prepended and permanent: every other hook (caches, means, ablations) sees the masked z,
    # and TransformerLens's reset_hooks() after run_with_hooks leaves these in place.
    model.hook_tokens.add_hook(on_tokens, is_permanent=True, prepend=True)
    for layer in range(model.cfg.n_layers):
        model.hook_dict[get_act_name("z", layer)].add_hook(on_z, is_permanent=True, prepend=True)
    mask.hook_fns = (on_tokens, on_z)
    setattr(model, ATTR, mask)
    return mask
