"""From examples to tensors: padded batches, the training mixture, and fixed evaluation sets.

A sequence is ``<bos> prompt target`` right-padded with ``<pad>``. The model reads the whole
sequence; the loss and the exact-match metric look only at *answer* positions, the target tokens.
``answer_mask[b, p]`` is True when ``tokens[b, p]`` is a target token, so the logits that predict
it sit at position ``p - 1``.

Training data are generated on the fly, as in the paper: every example draws a task from the
group (per-task weights, uniform by default), then a length uniformly from that task's training
range. To keep padding small, the sampler draws a *pool* of ``batch_size * n_buckets`` examples,
sorts it by sequence length and cuts it into ``n_buckets`` batches of similar lengths, which are
served in a shuffled order (length bucketing). The pool for refill ``k`` is drawn from
``numpy.random.default_rng([seed, k])``, so the batch served at any step is a pure function of
``(seed, step)``: resuming a run needs nothing but the step counter.

Evaluation sets are fixed per ``(task, length)`` and seeded independently of training data.

**Layout groups.** A mean over a batch is only meaningful if row ``i``'s position ``p`` means
the same thing as row ``j``'s. Every task but the mazes has one fixed token layout per length; a
maze prompt has a fixed length per maze size but its answer length varies. Head scoring,
ablation and corruption therefore group rows by ``(task, length, prompt_len)``
(:func:`layout_groups`); within a group, means are masked means over the rows that have a real
(non-pad) token at that position. Padding is on the right and attention is causal, so padded
positions never influence a real position and right-padded maze rows of one group can share a
forward pass. :func:`task_batch` concatenates a task's fixed evaluation sets into one such batch.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.core.errors import InterpError
from interp.tasks import Example, Task, get_task
from interp.tasks.encoding import TokenEncoder, vocab_for
from interp.tasks.vocab import VOCAB

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

EVAL_SALT = 7_919  # keeps evaluation streams disjoint from training streams ([seed, k])


@dataclass
class Batch:
    """A right-padded batch of encoded examples.

    Attributes:
        tokens: ``<bos> prompt target <pad>...`` token ids.
        answer_mask: True at target-token positions.
        prompt_len: number of tokens before the first target token (``<bos>`` included).
        seq_len: number of non-pad tokens.
        lengths: the task length of each example.
        tasks: the task name of each example.
    """

    tokens: Int[Tensor, "batch pos"]
    answer_mask: Bool[Tensor, "batch pos"]
    prompt_len: Int[Tensor, " batch"]
    seq_len: Int[Tensor, " batch"]
    lengths: Int[Tensor, " batch"]
    tasks: list[str]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_pos(self) -> int:
        return self.tokens.shape[1]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on ``device``; ``non_blocking`` copies asynchronously from pinned memory
        (:meth:`pin_memory`) to a GPU."""
        return Batch(
            self.tokens.to(device, non_blocking=non_blocking),
            self.answer_mask.to(device, non_blocking=non_blocking),
            self.prompt_len.to(device, non_blocking=non_blocking),
            self.seq_len.to(device, non_blocking=non_blocking),
            self.lengths.to(device, non_blocking=non_blocking),
            self.tasks,
        )

    def pin_memory(self) -> Batch:
        """A copy in page-locked host memory, from which a GPU copy can run asynchronously."""
        return Batch(
            self.tokens.pin_memory(),
            self.answer_mask.pin_memory(),
            self.prompt_len.pin_memory(),
            self.seq_len.pin_memory(),
            self.lengths.pin_memory(),
            self.tasks,
        )

    def select(self, idx: Sequence[int] | Int[Tensor, " rows"]) -> Batch:
        """Sub-batch of the given rows, trimmed of all-padding columns."""
        idx_t = torch.as_tensor(idx, dtype=torch.long, device=self.seq_len.device)
        seq_len = self.seq_len[idx_t]
        width = int(seq_len.max()) if len(idx_t) else 0
        return Batch(
            self.tokens[idx_t, :width],
            self.answer_mask[idx_t, :width],
            self.prompt_len[idx_t],
            seq_len,
            self.lengths[idx_t],
            [self.tasks[i] for i in idx_t.tolist()],
        )

    @property
    def real_fraction(self) -> float:
        """Fraction of the computed ``batch x pos`` grid that holds real (non-pad) tokens."""
        return float(self.seq_len.sum()) / max(1, self.tokens.numel())


def encode(
    examples: Sequence[Example], vocab: TokenEncoder = VOCAB, n_ctx: int | None = None
) -> Batch:
    """Encode examples into one right-padded :class:`Batch`.

    Args:
        examples: the examples, of any tasks and lengths.
        vocab: the vocabulary (the shared one by default; a pretrained model's
            :class:`~interp.tasks.encoding.TextVocab` renders a symbol as one or more of its
            tokens).
        n_ctx: if given, refuse any sequence longer than this many tokens, rather than ever
            truncating it.

    Raises:
        InterpError: on an empty list, a token outside the vocabulary, or a sequence longer than
            ``n_ctx``.
    """
    if not examples:
        raise InterpError("cannot encode an empty list of examples")
    prompts = [vocab.encode(ex.prompt) for ex in examples]
    seqs = [
        [vocab.bos_id, *p, *vocab.encode(ex.target)]
        for p, ex in zip(prompts, examples, strict=True)
    ]
    width = max(len(s) for s in seqs)
    if n_ctx is not None and width > n_ctx:
        worst = max(range(len(seqs)), key=lambda i: len(seqs[i]))
        ex = examples[worst]
        raise InterpError(
            f"task {ex.task!r} at length {ex.length} needs {width} tokens, more than the model's "
            f"context n_ctx={n_ctx}; train a model with a larger n_ctx or evaluate shorter lengths"
        )
    # Batches are built on the CPU (whatever the default device) and moved to the model's
    # device by whoever runs the model.
    cpu = torch.device("cpu")
    tokens = torch.full((len(seqs), width), vocab.pad_id, dtype=torch.long, device=cpu)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool, device=cpu)
    prompt_len = torch.empty(len(seqs), dtype=torch.long, device=cpu)
    for i, (s, p_ids) in enumerate(zip(seqs, prompts, strict=True)):
        tokens[i, : len(s)] = torch.tensor(s, dtype=torch.long, device=cpu)
        p = 1 + len(p_ids)
        mask[i, p : len(s)] = True
        prompt_len[i] = p
    return Batch(
        tokens=tokens,
        answer_mask=mask,
        prompt_len=prompt_len,
        seq_len=torch.tensor([len(s) for s in seqs], dtype=torch.long, device=cpu),
        lengths=torch.tensor([ex.length for ex in examples], dtype=torch.long, device=cpu),
        tasks=[ex.task for ex in examples],
    )


@dataclass(frozen=True)
class TaskSpec:
    """One task of a training mixture: its name, training length range and sampling weight, and
    optionally the attention heads its examples may use (``heads``, in every layer; None: all;
    :mod:`interp.models.head_mask`)."""

    name: str
    min_length: int
    max_length: int
    weight: float = 1.0
    heads: tuple[int, ...] | None = None

    def validate(self) -> Task:
        task = get_task(self.name)
        task.check_length(self.min_length)
        task.check_length(self.max_length)
        if self.min_length > self.max_length:
            raise InterpError(
                f"task {self.name!r}: length range {self.min_length}..{self.max_length} is empty"
            )
        if not self.weight > 0:
            raise InterpError(f"task {self.name!r}: weight must be positive, got {self.weight}")
        return task


class MixtureSampler:
    """Deterministic, resumable stream of length-bucketed training batches over a task mixture.

    Args:
        tasks: the mixture.
        batch_size: examples per batch.
        seed: the data seed.
        n_buckets: batches cut from each sorted pool; 1 disables bucketing.
        n_ctx: context limit passed to :func:`encode`.
        vocab: vocabulary passed to :func:`encode` (a pretrained model's text rendering, or
            the shared one).
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        batch_size: int,
        seed: int,
        n_buckets: int = 8,
        n_ctx: int | None = None,
        vocab: TokenEncoder = VOCAB,
    ) -> None:
        if not tasks:
            raise InterpError("a training mixture needs at least one task")
        if batch_size < 1 or n_buckets < 1:
            raise InterpError("batch_size and n_buckets must be positive")
        self.specs = list(tasks)
        self.tasks = [s.validate() for s in self.specs]
        w = np.array([s.weight for s in self.specs], dtype=np.float64)
        self.probs = w / w.sum()
        self.batch_size = batch_size
        self.seed = seed
        self.n_buckets = n_buckets
        self.n_ctx = n_ctx
        self.vocab = vocab
        self._pool_index = -1
        self._pool: list[Batch] = []

    def sample_examples(self, n: int, rng: np.random.Generator) -> list[Example]:
        """Draw ``n`` examples: task by weight, then a length uniform in its range."""
        which = rng.choice(len(self.tasks), size=n, p=self.probs)
        out = []
        for k in which:
            spec, task = self.specs[k], self.tasks[k]
            length = int(rng.integers(spec.min_length, spec.max_length + 1))
            out.append(task.sample(length, rng))
        return out

    def _fill(self, pool_index: int) -> None:
        rng = np.random.default_rng([self.seed, pool_index])
        examples = self.sample_examples(self.batch_size * self.n_buckets, rng)
        if self.n_buckets > 1:
            # Stable sort by token count so batches hold similar lengths; order of batches is
            # shuffled so the model does not see a length curriculum within a pool.
            examples.sort(key=lambda ex: len(ex.prompt) + len(ex.target))
        chunks = [
            examples[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.n_buckets)
        ]
        order = rng.permutation(self.n_buckets) if self.n_buckets > 1 else [0]
        self._pool = [encode(chunks[i], self.vocab, n_ctx=self.n_ctx) for i in order]
        self._pool_index = pool_index

    def batch(self, step: int) -> Batch:
        """The batch for training step ``step`` (0-based); a pure function of ``(seed, step)``."""
        pool_index, offset = divmod(step, self.n_buckets)
        if pool_index != self._pool_index:
            self._fill(pool_index)
        return self._pool[offset]

    def __iter__(self) -> Iterator[Batch]:
        step = 0
        while True:
            yield self.batch(step)
            step += 1


class Prefetcher:
    """A :class:`MixtureSampler`'s batches for steps ``start..stop-1``, made ahead in a thread.

    Making a batch (sampling examples in Python, encoding them) is CPU work, about 20 ms for the
    paper preset's 256 examples on one core, while a GPU step of that model takes a few ms: made
    in the training loop, the batch would leave the GPU idle most of the time. The thread runs
    the same sampler over the same steps in the same order, so the stream is exactly the one
    ``sampler.batch(step)`` gives (each batch is a pure function of ``(seed, step)``); only the
    moment a batch is computed moves. An error while making the batch of step ``s`` is raised
    when step ``s`` is asked for, as without prefetching.

    Args:
        sampler: the stream (used only by the thread from now on).
        start: the first step.
        stop: one past the last step.
        depth: batches held ready (bounds the memory used).
        pin: copy each batch into page-locked memory (CUDA: the copy to the GPU can then run
            asynchronously, ``Batch.to(dev, non_blocking=True)``).
    """

    def __init__(
        self, sampler: MixtureSampler, start: int, stop: int, depth: int = 4, pin: bool = False
    ) -> None:
        self._queue: queue.Queue[tuple[int, Batch | None, BaseException | None]] = queue.Queue(
            maxsize=max(1, depth)
        )
        self._stop = threading.Event()
        self._next = start
        self._thread = threading.Thread(
            target=self._run, args=(sampler, start, stop, pin), name="interp-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: tuple[int, Batch | None, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, sampler: MixtureSampler, start: int, stop: int, pin: bool) -> None:
        for step in range(start, stop):
            try:
                b = sampler.batch(step)
                item: tuple[int, Batch | None, BaseException | None] = (
                    step,
                    b.pin_memory() if pin else b,
                    None,
                )
            except BaseException as e:  # raised in the consumer, at this step
                self._put((step, None, e))
                return
            if not self._put(item):
                return

    def batch(self, step: int) -> Batch:
        """The batch of ``step``; steps must be asked for in order, from ``start``."""
        if step != self._next:
            raise InterpError(f"prefetched batches are read in order: expected step {self._next}")
        got, b, err = self._queue.get()
        if err is not None:
            raise err
        assert got == step and b is not None
        self._next += 1
        return b

    def close(self) -> None:
        """Stop the thread (it finishes the batch it is making) and wait for it."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def eval_examples(task: str | Task, length: int, n: int, seed: int = 0) -> list[Example]:
    """The fixed evaluation set for ``(task, length)``: ``n`` examples, independent of training.

    The stream depends only on ``(seed, task name, length)``, so the first ``m < n`` examples of
    a larger set equal the smaller set.
    """
    t = get_task(task) if isinstance(task, str) else task
    rng = np.random.default_rng([EVAL_SALT, seed, zlib.crc32(t.name.encode()), int(length)])
    return t.sample_many(length, n, rng)


def eval_batches(
    task: str | Task,
    lengths: Sequence[int],
    n: int,
    seed: int = 0,
    n_ctx: int | None = None,
    vocab: TokenEncoder = VOCAB,
) -> Mapping[int, Batch]:
    """Encoded evaluation sets, one :class:`Batch` per length (in ``vocab``)."""
    return {int(L): encode(eval_examples(task, L, n, seed), vocab, n_ctx=n_ctx) for L in lengths}


def iter_minibatches(batch: Batch, size: int) -> Iterator[Batch]:
    """Split a batch into consecutive row chunks of at most ``size`` rows."""
    for start in range(0, len(batch), size):
        yield batch.select(range(start, min(start + size, len(batch))))


# --------------------------------------------------------------------------------------------
# Layout groups and assembling batches (head scoring, ablation, attention)

GroupKey = tuple[str, int, int]
"""``(task, length, prompt_len)``: rows with one token layout (see :func:`layout_groups`)."""


def layout_groups(batch: Batch) -> dict[GroupKey, Int[Tensor, " rows"]]:
    """Row indices of each ``(task, length, prompt_len)`` group, in order of first appearance
    (on the CPU, wherever the batch is)."""
    groups: dict[GroupKey, list[int]] = {}
    lengths = batch.lengths.tolist()
    prompt_len = batch.prompt_len.tolist()
    for i, (t, L, p) in enumerate(zip(batch.tasks, lengths, prompt_len, strict=True)):
        groups.setdefault((t, int(L), int(p)), []).append(i)
    return {k: torch.tensor(v, dtype=torch.long, device="cpu") for k, v in groups.items()}


def repeat_batch(batch: Batch, n: int) -> Batch:
    """The batch stacked ``n`` times along the batch dimension (replica-major)."""
    return Batch(
        batch.tokens.repeat(n, 1),
        batch.answer_mask.repeat(n, 1),
        batch.prompt_len.repeat(n),
        batch.seq_len.repeat(n),
        batch.lengths.repeat(n),
        batch.tasks * n,
    )


def row_chunks(n: int, size: int) -> list[Int[Tensor, " rows"]]:
    """Row indices ``0..n-1`` cut into consecutive chunks of at most ``size`` (on the CPU)."""
    return [torch.arange(s, min(s + size, n), device="cpu") for s in range(0, n, size)]


def task_batch(
    model: HookedTransformer,
    task: str,
    lengths: Sequence[int] | None,
    n_examples: int,
    seed: int = 0,
) -> Batch:
    """The fixed evaluation sets of ``task`` at ``lengths``, concatenated into one batch.

    Raises:
        InterpError: for an unknown task, no or invalid lengths, a bad example count, or a length
            whose sequences exceed the model's context.
    """
    t = get_task(task)
    if lengths is None or len(lengths) == 0:
        raise InterpError(f"scoring task {task!r} needs at least one length (lengths=[...])")
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise InterpError(f"n_examples must be a positive integer, got {n_examples!r}")
    for L in lengths:
        t.check_length(L)
        check_context(model, t.max_tokens(int(L)), f"task {task!r} at length {L}")
    vocab = vocab_for(model)
    sets = eval_batches(t, [int(L) for L in lengths], n_examples, seed, model.cfg.n_ctx, vocab)
    return concat_batches(list(sets.values()))


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Stack batches row-wise, right-padding to the widest."""
    if not batches:
        raise InterpError("cannot concatenate an empty list of batches")
    width = max(b.n_pos for b in batches)

    def pad(t: Int[Tensor, "b pos"] | Bool[Tensor, "b pos"], value: int | bool) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return Batch(
        torch.cat([pad(b.tokens, VOCAB.pad_id) for b in batches]),
        torch.cat([pad(b.answer_mask, False) for b in batches]),
        torch.cat([b.prompt_len for b in batches]),
        torch.cat([b.seq_len for b in batches]),
        torch.cat([b.lengths for b in batches]),
        [t for b in batches for t in b.tasks],
    )


def check_context(cfg: Any, n_tokens: int, what: str = "input") -> None:
    """Refuse a sequence longer than the model's context.

    ``cfg`` is a model config (:class:`interp.models.architecture.ModelConfig`) or a model (a
    ``HookedTransformer``, whose ``cfg.n_ctx`` is read).

    RoPE's rotation table only has ``n_ctx`` rows; TransformerLens would fail with a shape error
    (or, for learned positions, index out of range), so the limit is checked up front.
    """
    n_ctx = cfg.cfg.n_ctx if hasattr(cfg, "cfg") else cfg.n_ctx
    if n_tokens > n_ctx:
        raise InterpError(
            f"{what} needs {n_tokens} tokens but the model's context is n_ctx={n_ctx}; "
            "evaluate shorter lengths or train with a larger n_ctx"
        )
