"""The paper's task groups (its Figure 2) and the two controls.

Each group names a main task, its auxiliary tasks and the paper's training max lengths. The
lengths here are the paper's; CPU-scale runs scale them down in their specs (``models/presets``,
``analyses/``), keeping the auxiliary/main ratio. ``kind`` is ``transfer`` for the paper's nine
related pairs, ``control`` for the unrelated controls and ``single_aux`` for the one-auxiliary
halves of the two-auxiliary groups (the paper's Figure 14).
"""

from __future__ import annotations

from interp.tasks.base import TaskGroup

_GROUPS = [
    TaskGroup(
        "arith_a",
        "reverse_add",
        ("no_carry", "carry_only"),
        16,
        32,
        description="reverse add <- no carry + carry only",
    ),
    TaskGroup(
        "arith_b",
        "reverse_add",
        ("reverse_sub",),
        16,
        32,
        description="reverse add <- reverse subtract",
    ),
    TaskGroup(
        "arith_c",
        "reverse_add",
        ("mul3_cot",),
        8,
        16,
        description="reverse add <- n x 3 CoT multiply",
    ),
    TaskGroup("string_a", "copy", ("mqar",), 16, 32, description="string copy <- MQAR"),
    TaskGroup(
        "string_b",
        "capitalize_reverse",
        ("capitalize", "reverse"),
        16,
        32,
        description="capitalize-reverse <- capitalize + reverse",
    ),
    TaskGroup(
        "maze_a",
        "dfs_trace",
        ("shortest_path",),
        32,
        64,
        description="DFS trace <- shortest path (nodes)",
    ),
    TaskGroup(
        "maze_b",
        "shortest_path",
        ("dfs_trace",),
        32,
        64,
        description="shortest path <- DFS trace (swapped)",
    ),
    TaskGroup(
        "control_1",
        "reverse_add",
        ("copy_first_op",),
        16,
        32,
        kind="control",
        description="reverse add <- copy-first-op (unrelated)",
    ),
    TaskGroup(
        "control_2",
        "copy",
        ("reverse",),
        16,
        32,
        kind="control",
        description="string copy <- reverse (unrelated)",
    ),
    # One auxiliary instead of two (the paper's Figure 14): each half of a two-auxiliary group.
    TaskGroup("arith_a_nocarry", "reverse_add", ("no_carry",), 16, 32, kind="single_aux",
              description="reverse add <- no carry alone (Fig. 14)"),
    TaskGroup("arith_a_carry", "reverse_add", ("carry_only",), 16, 32, kind="single_aux",
              description="reverse add <- carry only alone (Fig. 14)"),
    TaskGroup("string_b_cap", "capitalize_reverse", ("capitalize",), 16, 32, kind="single_aux",
              description="capitalize-reverse <- capitalize alone (Fig. 14)"),
    TaskGroup("string_b_rev", "capitalize_reverse", ("reverse",), 16, 32, kind="single_aux",
              description="capitalize-reverse <- reverse alone (Fig. 14)"),
]  # fmt: skip

GROUPS: dict[str, TaskGroup] = {g.name: g for g in _GROUPS}
