"""The task abstraction: a generator of (prompt, target) token lists at a given length.

Every task in the paper is a function from an input string to an output string, parameterised by
a *length* (digits of the operands, characters of the string, nodes of the maze). A :class:`Task`
samples one :class:`Example` at a requested length from a ``numpy.random.Generator``; the same
generator state always gives the same example, which is what makes training data and evaluation
sets reproducible.

Format conventions shared by all tasks (the paper leaves them open):

* A prompt starts with the task-identity token (``<add>``, ``<rev>``, ...) unless the task was
  built with ``task_token=False``, and ends with ``=``.
* A target ends with ``<eos>``; the model is trained to emit it, so decoding knows when to stop.
* For a given task and length the prompt and target lengths (in tokens) are fixed except for the
  maze tasks, so examples of one length line up position by position. Head scoring relies on this
  when it averages activations over a batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from interp.core.errors import InterpError
from interp.tasks.vocab import EOS, join_tokens

RngLike = np.random.Generator | int | None


def as_rng(rng: RngLike) -> np.random.Generator:
    """Turn an int seed (or None) into a ``numpy.random.Generator``; pass generators through."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


@dataclass(frozen=True)
class Example:
    """One task instance.

    Attributes:
        task: name of the task that produced it.
        length: the task-specific length it was sampled at.
        prompt: input tokens, ending with ``=``.
        target: answer tokens, ending with ``<eos>``; the loss is computed on these only.
        meta: task-specific extras (operands, the maze tree, ...) used by tests and analyses.
    """

    task: str
    length: int
    prompt: list[str]
    target: list[str]
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def text(self) -> str:
        """Readable one-line rendering, e.g. ``<add> 85+76= 521 <eos>``."""
        return f"{join_tokens(self.prompt)} {join_tokens(self.target)}"

    @property
    def answer(self) -> list[str]:
        """The target without its trailing ``<eos>``."""
        return self.target[:-1] if self.target and self.target[-1] == EOS else list(self.target)


class Task(ABC):
    """A length-parameterised algorithmic task.

    Subclasses set :attr:`name`, :attr:`token`, :attr:`min_length`, :attr:`max_length`,
    :attr:`family` and implement :meth:`_sample`.

    Args:
        task_token: prefix prompts with the task-identity token.
    """

    name: str = ""
    token: str = ""
    family: str = ""
    description: str = ""
    min_length: int = 1
    max_length: int = 64

    def __init__(self, task_token: bool = True) -> None:
        self.task_token = task_token

    @property
    def lengths(self) -> range:
        """The valid length range (inclusive of both ends)."""
        return range(self.min_length, self.max_length + 1)

    def check_length(self, length: int) -> int:
        """Validate ``length`` and return it as an int."""
        if isinstance(length, bool) or not isinstance(length, int | np.integer):
            raise InterpError(f"length must be an integer, got {length!r}")
        if not self.min_length <= int(length) <= self.max_length:
            raise InterpError(
                f"length {length} is outside task {self.name!r}'s range "
                f"{self.min_length}..{self.max_length}"
            )
        return int(length)

    def sample(self, length: int, rng: RngLike = None) -> Example:
        """Sample one example at ``length``.

        Args:
            length: task-specific length (see the task's docstring).
            rng: a ``numpy.random.Generator`` or an int seed.
        """
        length = self.check_length(length)
        prompt, target, meta = self._sample(length, as_rng(rng))
        if self.task_token:
            prompt = [self.token, *prompt]
        return Example(self.name, length, prompt, [*target, EOS], meta)

    def sample_many(self, length: int, n: int, rng: RngLike = None) -> list[Example]:
        """Sample ``n`` examples at ``length`` from one generator."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise InterpError(f"the example count must be a positive integer, got {n!r}")
        g = as_rng(rng)
        return [self.sample(length, g) for _ in range(int(n))]

    def max_tokens(self, length: int) -> int:
        """Upper bound on ``len(prompt) + len(target)`` at ``length`` (task token and ``<eos>``
        included). Fixed-format tasks measure one sample; variable-format tasks override this."""
        ex = self.sample(length, 0)
        return len(ex.prompt) + len(ex.target)

    @abstractmethod
    def _sample(self, length: int, rng: np.random.Generator) -> tuple[list[str], list[str], dict]:
        """Return ``(prompt without task token, answer without <eos>, meta)``."""

    def __repr__(self) -> str:
        lengths = f"{self.min_length}..{self.max_length}"
        return f"{type(self).__name__}(name={self.name!r}, lengths={lengths})"


def transfer_range(main_max: int, aux_max: int) -> tuple[int, int]:
    """The transfer lengths ``(lo, hi)``, both included: from one past the main task's longest
    training length to the auxiliaries' longest.

    The one definition of the range the package uses: a run's
    :meth:`interp.runs.spec.TrainSpec.transfer_range`, the run tables and the per-run metrics
    all read it from here.
    """
    return main_max + 1, aux_max


@dataclass(frozen=True)
class TaskGroup:
    """A main task trained jointly with auxiliary tasks, as in the paper's Figure 2.

    Attributes:
        name: group name, e.g. ``"arith_a"``.
        main: the main task (trained on short inputs).
        aux: the auxiliary tasks (trained on longer inputs).
        main_max: the paper's training max length for the main task.
        aux_max: the paper's training max length for the auxiliary tasks.
        kind: ``"transfer"`` for the paper's related pairs, ``"control"`` for unrelated ones.
        description: one line for listings.
    """

    name: str
    main: str
    aux: tuple[str, ...]
    main_max: int
    aux_max: int
    kind: str = "transfer"
    description: str = ""

    @property
    def tasks(self) -> tuple[str, ...]:
        """All task names, main first."""
        return (self.main, *self.aux)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "main": self.main,
            "aux": list(self.aux),
            "main_max": self.main_max,
            "aux_max": self.aux_max,
            "kind": self.kind,
            "description": self.description,
        }
