"""Per-task head masks (interp.models.head_mask): masked heads carry nothing, forward or backward,
for
their task's rows only; training, evaluation, loading, resuming and head scoring honour them; a
spec without masks gets no hook at all; bad masks are one-line errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tinyscale import to_toml
from transformer_lens import HookedTransformer

import interp.causal.set_trie as set_trie
import interp.models.fast_forward as lean_module
import interp.scoring.heads as H
from interp.causal.head_sets import ablate_sets
from interp.causal.interchange import interchange_scores
from interp.cli.commands import main
from interp.core.errors import InterpError
from interp.core.io import read_json
from interp.models.factory import build_model
from interp.models.head_mask import ATTR, get_mask
from interp.runs.loader import load_run
from interp.runs.spec import TrainSpec
from interp.runs.train import answer_loss, train
from interp.scoring.ablation import ablate_heads
from interp.scoring.evaluate import accuracy_table, answer_logits, greedy_decode
from interp.tasks.batches import MixtureSampler, task_batch

MAIN, AUX = "reverse_add", "no_carry"
MAIN_HEADS, AUX_HEADS = (0, 1), (2, 3)  # the zoo's `disjoint` design on a 4-head tiny model
N_HEADS, N_LAYERS = 4, 2


def _dict(main_heads: Any = MAIN_HEADS, aux_heads: Any = AUX_HEADS, **train: Any) -> dict:
    tasks: list[dict[str, Any]] = [
        {"name": MAIN, "lengths": [1, 3]},
        {"name": AUX, "lengths": [1, 5]},
    ]
    for t, h in zip(tasks, (main_heads, aux_heads), strict=True):
        if h is not None:
            t["heads"] = list(h) if isinstance(h, tuple) else h
    return {
        "name": "masked",
        "main": MAIN,
        "seed": 3,
        "tasks": tasks,
        "model": {"preset": "tiny", "n_heads": N_HEADS},
        "optim": {"lr": 1e-2, "warmup_steps": 2, "decay_fraction": 0.5},
        "train": {
            "steps": 8,
            "batch_size": 16,
            "n_buckets": 2,
            "checkpoint_every": 4,
            "log_every": 1,
            "threads": 1,
            **train,
        },
        "eval": {"max_length": 5, "every": 4, "examples": 4},
    }


def _spec(main_heads: Any = MAIN_HEADS, aux_heads: Any = AUX_HEADS, **train: Any) -> TrainSpec:
    return TrainSpec.from_dict(_dict(main_heads, aux_heads, **train))


def _randomised(model: HookedTransformer) -> HookedTransformer:
    """Large random weights, so that every head's z is far from zero."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def _pair(spec: TrainSpec) -> tuple[HookedTransformer, HookedTransformer]:
    """A masked model and an unmasked one with the same (random) weights."""
    masked = _randomised(build_model(spec.model, "cpu", spec.task_heads))
    plain = build_model(spec.model, "cpu")
    plain.load_state_dict(masked.state_dict())
    return masked, plain.eval()


def _mixed_batch(spec: TrainSpec):
    """A training batch holding rows of both tasks."""
    sampler = MixtureSampler(spec.tasks, 32, seed=0, n_buckets=1, n_ctx=spec.model.n_ctx)
    batch = sampler.batch(0)
    assert set(batch.tasks) == {MAIN, AUX}
    return batch


def _allowed(task: str) -> tuple[int, ...]:
    return MAIN_HEADS if task == MAIN else AUX_HEADS


def _zero_hooks(task: str) -> list:
    """Hooks that zero, on an unmasked model, the heads ``task`` may not use: the definition."""
    off = [h for h in range(N_HEADS) if h not in _allowed(task)]

    def hook(z: torch.Tensor, hook: Any) -> torch.Tensor:
        z = z.clone()
        z[:, :, off] = 0
        return z

    return [(f"blocks.{layer}.attn.hook_z", hook) for layer in range(N_LAYERS)]


# --------------------------------------------------------------------------------------------
# The mechanism


def test_a_spec_without_heads_builds_a_model_without_any_hook():
    spec = _spec(None, None)
    assert spec.task_heads == {}
    assert all("heads" not in t for t in spec.to_dict()["tasks"])
    model = build_model(spec.model, "cpu", spec.task_heads)
    assert not hasattr(model, ATTR) and get_mask(model) is None
    assert not hasattr(model, "hook_tokens")
    assert not any(hp.fwd_hooks or hp.bwd_hooks for hp in model.hook_dict.values())
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_masked_model_has_the_unmasked_initial_weights():
    a = build_model(_spec().model, "cpu", _spec().task_heads).state_dict()
    b = build_model(_spec(None, None).model, "cpu").state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_masked_heads_carry_nothing_for_their_task_rows_only():
    spec = _spec()
    model, _ = _pair(spec)
    batch = _mixed_batch(spec)
    _, cache = model.run_with_cache(batch.tokens)
    mask = get_mask(model)
    assert mask is not None
    expected = torch.stack([mask.keep_for_task(t) for t in batch.tasks])
    assert torch.equal(mask.rows, expected)  # the task token names each row's task
    for layer in range(N_LAYERS):
        z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch pos head d_head]
        for i, task in enumerate(batch.tasks):
            n = int(batch.seq_len[i])
            for h in range(N_HEADS):
                size = float(z[i, :n, h].abs().sum())
                if h in _allowed(task):
                    assert size > 0, (layer, task, h)
                else:
                    assert size == 0, (layer, task, h)


def test_masked_model_equals_zeroing_the_heads_by_hand():
    spec = _spec()
    masked, plain = _pair(spec)
    batch = _mixed_batch(spec)
    with torch.no_grad():
        got = masked(batch.tokens)
        free = plain(batch.tokens)
        for task in (MAIN, AUX):
            rows = [i for i, t in enumerate(batch.tasks) if t == task]
            want = plain.run_with_hooks(batch.tokens[rows], fwd_hooks=_zero_hooks(task))
            torch.testing.assert_close(got[rows], want, rtol=0, atol=1e-5)
            assert (got[rows] - free[rows]).abs().max() > 1e-3  # the mask changes the output


def test_gradients_of_masked_heads_get_nothing_from_their_task_rows():
    spec = _spec()
    model, _ = _pair(spec)
    model.train()
    batch = _mixed_batch(spec)
    for task in (MAIN, AUX):
        model.zero_grad(set_to_none=True)
        logits = model(batch.tokens)
        rows = torch.tensor([t == task for t in batch.tasks])
        # The loss of this task's rows only (other rows' answers masked out of the loss).
        only = copy.copy(batch)
        only.answer_mask = batch.answer_mask & rows[:, None]
        answer_loss(logits, only).backward()
        for layer in range(N_LAYERS):
            attn = model.blocks[layer].attn
            for h in range(N_HEADS):
                grads = [w.grad[h] for w in (attn.W_Q, attn.W_K, attn.W_V, attn.W_O)]
                size = sum(float(g.abs().sum()) for g in grads)
                if h in _allowed(task):
                    assert size > 0, (task, layer, h)
                else:
                    assert size == 0, (task, layer, h)


def test_residual_forward_uses_the_last_single_task_mask_and_refuses_mixed():
    spec = _spec()
    masked, plain = _pair(spec)
    batch = _mixed_batch(spec)
    main_rows = [i for i, t in enumerate(batch.tasks) if t == MAIN]
    tokens = batch.tokens[main_rows]
    with torch.no_grad():
        _, cache = masked.run_with_cache(tokens)
        resid = cache["blocks.1.hook_resid_pre"]
        got = masked(resid.repeat(2, 1, 1), start_at_layer=1)  # other row count: broadcast
        want = plain.run_with_hooks(tokens, fwd_hooks=_zero_hooks(MAIN))
        torch.testing.assert_close(got[: len(main_rows)], want, rtol=0, atol=1e-5)
        masked(batch.tokens)  # a mixed-task token forward
        with pytest.raises(InterpError, match="mixed tasks"):
            masked(resid, start_at_layer=1)
    fresh = build_model(spec.model, "cpu", spec.task_heads)
    with pytest.raises(InterpError, match="before any token input"):
        fresh(resid, start_at_layer=1)


def test_lean_forward_honours_the_mask(monkeypatch):
    spec = _spec()
    masked, _ = _pair(spec)
    batch = task_batch(masked, MAIN, [2, 3], 8)
    assert lean_module.lean_ok(masked)
    lean = H.score_heads(masked, batch, "mean_ablation", "logprob")
    monkeypatch.setattr(lean_module, "lean_ok", lambda m: False)
    plain = H.score_heads(masked, batch, "mean_ablation", "logprob")
    np.testing.assert_allclose(lean["score"], plain["score"], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# Head scoring on a masked model


def test_masks_survive_hook_resets():
    spec = _spec()
    masked, _ = _pair(spec)
    batch = _mixed_batch(spec)
    with torch.no_grad():
        before = masked(batch.tokens)
        masked.run_with_hooks(batch.tokens, fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z)])
        masked.reset_hooks()
        with masked.hooks(fwd_hooks=[]):
            pass
        torch.testing.assert_close(masked(batch.tokens), before, rtol=0, atol=0)


METHODS = ["mean_ablation", "zero_ablation", "activation_patching", "attribution_patching"]


@pytest.mark.parametrize("method", METHODS)
def test_scoring_a_masked_head_gives_zero(method):
    spec = _spec()
    masked, _ = _pair(spec)
    for task in (MAIN, AUX):
        metrics = ["logprob"] if method == "attribution_patching" else ["logprob", "exact_match"]
        df = H.score_heads(masked, task, method, metrics, lengths=[2, 3], n_examples=8)
        for (layer, head), g in df.groupby(["layer", "head"]):
            if head in _allowed(task):
                continue
            # exact match exactly; the log-prob up to the lean rerun's float rounding
            em, lp = g[g["metric"] == "exact_match"], g[g["metric"] == "logprob"]
            assert (em["score"] == 0).all(), (task, method, layer, head)
            assert lp["score"].abs().max() < 1e-6, (task, method, layer, head)
        if "ablation" in method:  # ablating a used head moves the log-prob
            lp = df[df["metric"] == "logprob"]
            assert lp[lp["head"].isin(_allowed(task))]["score"].abs().max() > 0


def test_fast_scores_match_the_hooked_ablation_on_a_masked_model():
    spec = _spec()
    masked, _ = _pair(spec)
    batch = task_batch(masked, MAIN, [3], 8)
    df = H.score_heads(masked, batch, "mean_ablation", "logprob")
    _, clean = ablate_heads(masked, batch, [])
    for layer, head in [(0, 0), (1, 1), (0, 3)]:
        _, lp = ablate_heads(masked, batch, [(layer, head)])
        row = df[(df["layer"] == layer) & (df["head"] == head)]
        assert float(row["score"].iloc[0]) == pytest.approx(float((clean - lp).mean()), abs=1e-5)


@pytest.mark.parametrize("layer_pass", [False, True])
def test_head_sets_on_a_masked_model(layer_pass, monkeypatch):
    spec = _spec()
    masked, _ = _pair(spec)
    assert set_trie.fast_path_ok(masked)  # the masks' own hooks do not count
    with masked.hooks(fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z)]):
        assert not set_trie.fast_path_ok(masked)  # anyone else's do
    monkeypatch.setattr(set_trie, "_FORCE_LAYER_PASS", layer_pass)
    batch = task_batch(masked, MAIN, [2, 3], 8)
    sets = [((0, 2),), ((0, 3), (1, 2)), ((0, 0),), ((0, 1), (1, 0))]
    em, lp, clean_em, clean_lp = ablate_sets(masked, batch, sets)
    torch.testing.assert_close(lp[0], clean_lp, rtol=0, atol=1e-5)  # masked heads: no effect
    torch.testing.assert_close(lp[1], clean_lp, rtol=0, atol=1e-5)
    assert (lp[2] - clean_lp).abs().max() > 1e-4  # a used head does matter
    for i, s in enumerate(sets):
        _, want = ablate_heads(masked, batch, list(s))
        torch.testing.assert_close(lp[i], want, rtol=0, atol=1e-5)


def test_interchange_is_refused_on_a_masked_model():
    masked, _ = _pair(_spec())
    with pytest.raises(InterpError, match="per-task head masks"):
        interchange_scores(masked, MAIN, AUX, [2], n_examples=4)


# --------------------------------------------------------------------------------------------
# Training, evaluation, loading, resuming


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    run_dir = tmp_path_factory.mktemp("masked") / "run"
    model = train(_spec(), run_dir, progress=False)
    return run_dir, {k: v.clone() for k, v in model.state_dict().items()}


def test_masks_are_recorded_and_a_masked_run_trains_differently(masked_run, tmp_path):
    run_dir, weights = masked_run
    tasks = read_json(run_dir / "config.json")["tasks"]
    assert [t.get("heads") for t in tasks] == [list(MAIN_HEADS), list(AUX_HEADS)]
    plain = train(_spec(None, None), tmp_path / "plain", progress=False).state_dict()
    assert any(not torch.equal(weights[k], plain[k]) for k in weights)


def test_all_heads_mask_trains_bit_identically_to_no_mask(tmp_path):
    # Masks that keep every head install the hooks but must change nothing at all.
    every = tuple(range(N_HEADS))
    a = train(_spec(every, every), tmp_path / "a", progress=False).state_dict()
    b = train(_spec(None, None), tmp_path / "b", progress=False).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_masks_is_bit_exact(masked_run, tmp_path):
    _, weights = masked_run
    train(_spec(), tmp_path / "r", progress=False, stop_after=5)  # killed after step 5
    resumed = train(_spec(), tmp_path / "r", progress=False).state_dict()
    assert all(torch.equal(weights[k], resumed[k]) for k in weights)


def test_load_run_gives_a_masked_model(masked_run):
    run_dir, _ = masked_run
    run = load_run(run_dir, device="cpu")
    mask = get_mask(run.model)
    assert mask is not None and mask.task_heads == {MAIN: MAIN_HEADS, AUX: AUX_HEADS}
    plain = build_model(run.spec.model, "cpu")
    plain.load_state_dict(run.model.state_dict())
    for task in (MAIN, AUX):
        batch = task_batch(run.model, task, [2, 4], 4)
        with torch.no_grad():
            got = answer_logits(run.model, batch)
            want = plain.run_with_hooks(batch.tokens, fwd_hooks=_zero_hooks(task))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_evaluation_runs_every_forward_masked(masked_run):
    run_dir, _ = masked_run
    model = load_run(run_dir, device="cpu").model
    seen: list[tuple[str, torch.Tensor]] = []

    def spy(z: torch.Tensor, hook: Any) -> None:
        seen.append((hook.name, z.detach().clone()))

    hooks = [(f"blocks.{layer}.attn.hook_z", spy) for layer in range(N_LAYERS)]
    for task in (MAIN, AUX):
        seen.clear()
        off = [h for h in range(N_HEADS) if h not in _allowed(task)]
        with model.hooks(fwd_hooks=hooks):
            accuracy_table(model, [task], {task: [1, 2, 5]}, n_examples=4)
            greedy_decode(model, task_batch(model, task, [2], 4))
        assert seen
        for _, z in seen:
            assert float(z[:, :, off].abs().sum()) == 0
            assert float(z[:, :, list(_allowed(task))].abs().sum()) > 0


def test_interp_eval_and_score_on_a_masked_run(masked_run, capsys):
    run_dir, _ = masked_run
    assert main(["eval", str(run_dir), "--examples", "4", "--quiet", "--device", "cpu"]) == 0
    argv = ["score", str(run_dir), "--lengths", "2:3", "--examples", "4", "--quiet"]
    assert main([*argv, "--metric", "exact_match,logprob", "--device", "cpu"]) == 0


# --------------------------------------------------------------------------------------------
# Bad specs


BAD = [
    ({"main_heads": [0, 4]}, "heads [4] out of range: the model has n_heads=4"),
    ({"main_heads": []}, "heads is empty"),
    ({"main_heads": [1, 1]}, "lists head(s) [1] more than once"),
    ({"main_heads": [-1]}, "non-negative integers"),
    ({"main_heads": ["0"]}, "non-negative integers"),
    ({"main_heads": 0}, "must be a list of head indices"),
    ({"compile": True}, "cannot be combined with [train] compile"),
]


@pytest.mark.parametrize("kw, needle", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_masks_are_one_line_errors(kw, needle, tmp_path, capsys):
    kw = dict(kw)
    d = _dict(kw.pop("main_heads", MAIN_HEADS), AUX_HEADS, **kw)
    with pytest.raises(InterpError) as e:
        TrainSpec.from_dict(d)
    assert needle in str(e.value) and "\n" not in str(e.value)
    spec = tmp_path / "bad.toml"
    spec.write_text(to_toml(d))
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interp: error: ") and needle in err and "\n" not in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# The zoo's intervention specs


def test_make_specs_writes_the_masked_specs_and_leaves_the_others_byte_for_byte(
    tmp_path, monkeypatch
):
    import importlib.util
    import tomllib

    repo = Path(__file__).resolve().parents[1]
    path = repo / "analyses" / "zoo" / "make_specs.py"
    mod_spec = importlib.util.spec_from_file_location("make_specs", path)
    assert mod_spec is not None and mod_spec.loader is not None
    make_specs = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(make_specs)
    monkeypatch.setattr(make_specs, "SPECS", tmp_path)
    make_specs.main("r4")
    make_specs.main("a4")
    make_specs.main("b4")
    shipped = repo / "models" / "zoo" / "specs"
    written = sorted(p.name for p in tmp_path.iterdir())
    # a4: the 15 it trained; r4 and b4 (r4 in bf16 + compile): issue 21's family (20 + 4 x 6)
    # and the intervention (2 x 8)
    assert len(written) == 15 + 2 * ((20 + 4 * 6) + 2 * 8)
    assert sorted(p.name for p in shipped.glob("[arb]4_*.toml")) == written
    for name in written:  # every spec the script writes is the one in the repository
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name
    for fam, k in [(f, k) for f in ("r4", "b4") for k in range(8)]:
        both = tomllib.loads((shipped / f"{fam}_both_s{k}.toml").read_text())
        for design, aux_heads in (("disjoint", [2, 3]), ("shared", [0, 1])):
            d = tomllib.loads((shipped / f"{fam}_{design}_s{k}.toml").read_text())
            assert d["name"] == f"{fam}_{design}_s{k}"
            assert [t.pop("heads") for t in d["tasks"]] == [[0, 1], aux_heads, aux_heads]
            if fam == "b4":  # masks are refused with compile: the masked runs train bf16 eager
                assert d["train"]["compile"] is False and both["train"]["compile"] is True
                d["train"]["compile"] = True
            assert {**d, "name": both["name"]} == both  # nothing else differs
            spec = TrainSpec.from_dict(
                tomllib.loads((shipped / f"{fam}_{design}_s{k}.toml").read_text())
            )
            assert spec.task_heads["reverse_add"] == (0, 1)
