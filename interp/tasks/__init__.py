"""The paper's algorithmic tasks and task groups.

Public API::

    from interp.tasks import list_tasks, get_task, list_groups, get_group
    ex = get_task("reverse_add").sample(length=5, rng=0)
    ex.prompt, ex.target, ex.text
"""

from __future__ import annotations

from interp.core.errors import unknown_choice
from interp.tasks.arithmetic import ARITHMETIC_TASKS
from interp.tasks.base import Example, Task, TaskGroup, as_rng, transfer_range
from interp.tasks.groups import GROUPS
from interp.tasks.mazes import MAZE_TASKS
from interp.tasks.strings import STRING_TASKS

_REGISTRY: dict[str, type[Task]] = {
    cls.name: cls for cls in (*ARITHMETIC_TASKS, *STRING_TASKS, *MAZE_TASKS)
}


def list_tasks() -> list[str]:
    """Names of every task, in registry order (arithmetic, strings, mazes)."""
    return list(_REGISTRY)


def get_task(name: str, task_token: bool = True) -> Task:
    """Instantiate a task by name.

    Raises:
        InterpError: for an unknown name; the message lists the valid ones.
    """
    if name not in _REGISTRY:
        raise unknown_choice("task", name, list_tasks())
    return _REGISTRY[name](task_token=task_token)


def list_groups() -> list[str]:
    """Names of the paper's task groups, transfer groups first, then controls."""
    return list(GROUPS)


def get_group(name: str) -> TaskGroup:
    """Look up a task group by name."""
    if name not in GROUPS:
        raise unknown_choice("group", name, list_groups())
    return GROUPS[name]


__all__ = [
    "transfer_range",
    "Example",
    "Task",
    "TaskGroup",
    "as_rng",
    "get_group",
    "get_task",
    "list_groups",
    "list_tasks",
]
