"""interp.cli.finetune: fine-tuning pretrained checkpoints, and the paper's experiment on them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from interp.cli.finetune import expand, extrapolation_gap
from interp.core.errors import InterpError
from interp.runs.spec import TrainSpec
from interp.runs.train import answer_loss, train
from interp.scoring.evaluate import exact_match, greedy_decode
from interp.scoring.heads import score_heads
from interp.tasks.batches import eval_batches
from interp.tasks.encoding import vocab_for

pytest.importorskip("transformers")


def _run(path, steps: int = 40, aux: bool = False) -> dict:
    tasks = [{"name": "reverse_add", "lengths": [1, 2]}]
    if aux:
        tasks.append({"name": "no_carry", "lengths": [1, 3]})
    return {
        "name": "ft",
        "main": "reverse_add",
        "seed": 0,
        "tasks": tasks,
        "model": {"pretrained": str(path)},
        "optim": {"lr": 1e-2, "warmup_steps": 5, "weight_decay": 0.0},
        "train": {"steps": steps, "batch_size": 16, "n_buckets": 2, "checkpoint_every": steps},
        "eval": {"max_length": 3, "examples": 8, "final_examples": 16},
    }


def _eval_loss(model, spec: TrainSpec) -> float:
    vocab = vocab_for(model)
    batch = eval_batches("reverse_add", [1, 2], 32, seed=5, n_ctx=model.cfg.n_ctx, vocab=vocab)
    with torch.no_grad():
        return float(np.mean([answer_loss(model(b.tokens), b).item() for b in batch.values()]))


@pytest.fixture(scope="module")
def finetuned(tiny_llama, tmp_path_factory):
    from interp.models.pretrained import load

    path, _ = tiny_llama
    spec = TrainSpec.from_dict(_run(path, aux=True))
    before = _eval_loss(load(path)[0], spec)
    run_dir = tmp_path_factory.mktemp("ft") / "run"
    model = train(spec, run_dir, progress=False)
    return run_dir, spec, model, before


def test_a_few_steps_lower_the_answer_loss(finetuned):
    _, spec, model, before = finetuned
    after = _eval_loss(model, spec)
    print(f"answer loss before {before:.3f}, after {after:.3f}")
    assert after < 0.8 * before, (before, after)


def test_exact_match_equals_greedy_decoding(finetuned):
    _, _, model, _ = finetuned
    batch = eval_batches("reverse_add", [2], 16, n_ctx=model.cfg.n_ctx, vocab=vocab_for(model))[2]
    assert torch.equal(exact_match(model, batch), greedy_decode(model, batch))


@pytest.mark.parametrize("method", ["mean_ablation", "activation_patching"])
def test_head_scoring_runs(finetuned, method):
    _, _, model, _ = finetuned
    df = score_heads(model, "reverse_add", method, "logprob", lengths=[2], n_examples=16)
    assert len(df) == model.cfg.n_layers * model.cfg.n_heads
    assert np.isfinite(df["score"]).all() and (df["score"].abs() > 0).any()


def test_run_directory_tools_reload_the_finetuned_model(finetuned):
    from interp.runs.loader import load_run
    from interp.runs.pipeline import overlap_run, score_run

    run_dir, spec, model, _ = finetuned
    loaded = load_run(run_dir)
    x = torch.tensor([[1, 14, 17, 17, 73, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), model(x), atol=1e-5)
    assert loaded.model.tokenizer is not None
    scores = score_run(run_dir, tasks=["reverse_add"], lengths=[1, 2], n_examples=8)
    assert set(scores["task"]) == {"reverse_add"}
    ov = overlap_run(run_dir, k=2, n_examples=8)
    assert len(ov) and {"reverse_add", "no_carry"} <= set(ov["task_a"]) | set(ov["task_b"])


def test_extrapolation_gap():
    acc = pd.DataFrame({"task": "t", "length": [1, 2, 3, 4], "accuracy": [1.0, 0.8, 0.45, 0.0]})
    # acc_in = 0.9; beyond: (0.9 - 0.45) / 0.9 = 0.5 and 1.0
    assert extrapolation_gap(acc, "t", 2, 4) == pytest.approx(0.75)
    acc["accuracy"] = [0.0, 0.02, 0.0, 0.0]
    assert np.isnan(extrapolation_gap(acc, "t", 2, 4))


def _experiment(paths, steps=None, **over) -> dict:
    d = {k: v for k, v in _run(paths[0], steps=6).items() if k != "model"}
    d.update(name="exp", checkpoints=[str(p) for p in paths], **over)
    if steps is not None:
        d["pretraining_steps"] = steps
    return d


def test_expand_validates_every_checkpoint_first(tiny_llama, tmp_path):
    path, _ = tiny_llama
    cells = expand(_experiment([path, path], steps=[10, 20]))
    assert [c.label for c in cells] == ["step10", "step20"]
    assert all(c.spec.model.pretrained == str(path) for c in cells)
    with pytest.raises(InterpError, match="run name"):
        expand(_experiment([path, path]))
    with pytest.raises(InterpError, match="one non-negative integer per checkpoint"):
        expand(_experiment([path, path], steps=[10]))
    with pytest.raises(InterpError, match="may set only n_ctx"):
        expand(_experiment([path], model={"d_model": 8}))
    with pytest.raises(InterpError, match="not found"):
        expand(_experiment([path, tmp_path / "missing"], steps=[1, 2]))


def test_experiment_end_to_end_cli(tiny_llama, tmp_path, capsys):
    from conftest import make_tiny_llama

    from interp.cli.commands import main

    first, _ = tiny_llama
    second = tmp_path / "later" / "tiny_llama"
    make_tiny_llama(second, seed=1)
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps(_experiment([first, second], steps=[100, 200])))
    out = tmp_path / "out"
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "step100: reverse_add (fine-tuned <= 2) accuracy by length 1:" in printed
    acc = pd.read_parquet(out / "accuracy.parquet")
    gap = pd.read_parquet(out / "gap.parquet")
    assert sorted(set(acc["checkpoint"])) == ["step100", "step200"]
    assert set(acc["length"]) == {1, 2, 3} and (acc["n"] == 16).all()
    assert (
        acc[acc["length"] <= 2]["in_train"].all() and not acc[acc["length"] == 3]["in_train"].any()
    )
    assert list(gap["pretraining_step"]) == [100, 200] and set(gap["gap_kind"]) == {
        "in_distribution"
    }
    assert (out / "pretrained.html").stat().st_size > 100_000  # plotly.js embedded
    for label in ("step100", "step200"):
        assert (out / "runs" / label / "DONE").is_file()
    # A second invocation reuses the finished runs and reproduces the tables.
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "accuracy.parquet"), acc)


def test_finetune_refuses_a_scratch_run_spec(tmp_path, capsys):
    from interp.cli.commands import main

    d = _run("x")
    d["model"] = {"preset": "tiny"}
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(d))
    assert main(["finetune", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "fine-tunes nothing" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["tpu9", "cuda:0"])
def test_finetune_refuses_an_unusable_device(device, tmp_path, capsys):
    from interp.cli.commands import main

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "o"
    assert main(["finetune", "missing.toml", "--out", str(out), "--device", device]) == 2
    assert "device" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name", ["smollm_reverse_add.toml", "smollm_shortest_path.toml"])
def test_shipped_experiment_specs_resolve(name, tiny_llama):
    import tomllib
    from pathlib import Path

    d = tomllib.loads((Path(__file__).parent.parent / "analyses" / "pretrained" / name).read_text())
    assert len(d["checkpoints"]) == 16 and d["pretraining_steps"][-1] == 2_560_000
    d["checkpoints"] = [str(tiny_llama[0])] * 16  # the real ones are downloaded by users
    cells = expand(d)
    assert len({c.spec.train.steps for c in cells}) == 1  # the same budget for each


def test_analyze_and_attention_figure_on_a_finetuned_run(finetuned):
    from interp.report.plots import attention_figure
    from interp.runs.pipeline import analyze_run

    run_dir, _, model, _ = finetuned
    tables = analyze_run(run_dir, n_examples=8, k=2, progress=False)
    assert set(tables["accuracy"]["task"]) == {"reverse_add", "no_carry"}
    assert len(tables["scores"]) and len(tables["overlap"])
    batch = eval_batches("reverse_add", [2], 2, n_ctx=model.cfg.n_ctx, vocab=vocab_for(model))[2]
    fig = attention_figure(model, batch, 1, 0)
    labels = [c[0] for c in fig.data[0].customdata[:, 0]]
    assert labels[0] == "0:<s>" and labels[1:5] == ["1:a", "2:d", "3:d", "4::"]


def test_finetune_one_run_spec_cli(tiny_llama, tmp_path, capsys):
    from interp.cli.commands import main

    spec = tmp_path / "run.json"
    spec.write_text(json.dumps(_run(tiny_llama[0], steps=4)))
    out = tmp_path / "run"
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 0
    assert "ft: reverse_add (fine-tuned <= 2) accuracy by length 1:" in capsys.readouterr().out
    assert (out / "DONE").is_file() and (out / "eval" / "step_000004.parquet").is_file()


# --------------------------------------------------------------------------------------------
# Issue 26: damaged checkpoint directories and experiment specs end in one line, write nothing


def _one_line(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("interp: error: ") and needle in err, err


BAD_HF_CONFIGS = [
    ("num_hidden_layers", "2", "num_hidden_layers must be a positive integer"),
    ("rope_theta", "big", "rope_theta must be a positive number"),
    ("hidden_size", 32.5, "hidden_size must be a positive integer"),
    ("vocab_size", "x", "vocab_size must be a positive integer"),
    ("num_key_value_heads", "2", "num_key_value_heads must be a positive integer"),
    ("max_position_embeddings", -1, "max_position_embeddings must be a positive integer"),
    ("rms_norm_eps", [1e-5], "rms_norm_eps must be a positive number"),
    ("intermediate_size", None, "intermediate_size must be a positive integer"),
    ("num_attention_heads", True, "num_attention_heads must be a positive integer"),
]


@pytest.mark.parametrize("key, value, needle", BAD_HF_CONFIGS, ids=[c[0] for c in BAD_HF_CONFIGS])
def test_finetune_refuses_a_config_with_a_wrong_type(key, value, needle, tiny_llama, tmp_path,
                                                     capsys):  # fmt: skip
    import shutil

    from tinyscale import to_toml

    from interp.cli.commands import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_llama[0], ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg[key] = value
    (ckpt / "config.json").write_text(json.dumps(cfg))
    spec = tmp_path / "ft.toml"
    spec.write_text(to_toml(_run(ckpt, steps=2)))
    out = tmp_path / "out"
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbled header", "empty"])
def test_finetune_refuses_damaged_weights_before_writing(damage, tiny_llama, tmp_path, capsys):
    import shutil

    from interp.cli.commands import main

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_llama[0], ckpt)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncated": data[: len(data) // 2], "garbled header": b"\xff" * 64, "empty": b""}[damage]
    )
    # As one experiment with a sound checkpoint first: nothing may be trained or written.
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps(_experiment([tiny_llama[0], ckpt], steps=[1, 2])))
    out = tmp_path / "out"
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys, "model.safetensors")
    assert not out.exists()


@pytest.mark.parametrize(
    "over, needle",
    [
        ({"name": ["x"]}, "name must be a non-empty string"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"tasks": [1]}, "every [[tasks]] entry needs"),
        ({"optim": 3}, "[optim] must be a table"),
        ({"pretraining_steps": [True]}, "one non-negative integer per checkpoint"),
        ({"checkpoints": [None]}, "'checkpoints' must be a non-empty list of paths"),
        ({"checkpoints": "ckpt"}, "'checkpoints' must be a non-empty list of paths"),
        ({"train": {"steps": "many"}}, "steps must be"),
    ],
)
def test_finetune_refuses_an_experiment_spec_with_a_bad_entry(over, needle, tiny_llama, tmp_path,
                                                              capsys):  # fmt: skip
    from interp.cli.commands import main

    d = _experiment([tiny_llama[0]])
    d.update(over)
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps(d))
    out = tmp_path / "out"
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys, needle)
    assert not out.exists()


def test_a_checkpoint_named_dot_dot_stays_inside_the_experiment(tiny_llama, tmp_path):
    """The run directory's name comes from the checkpoint's directory name; ``CKPT/sub/..``
    would have put the run at ``OUT/runs/..``, the experiment directory itself."""
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_llama[0], ckpt)
    (ckpt / "sub").mkdir()
    (cell,) = expand(_experiment([ckpt / "sub" / ".."]))
    assert cell.label == "checkpoint0"


def test_finetune_refuses_other_kinds_of_directory(tiny_llama, tmp_path, capsys):
    from interp.cli.commands import main

    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps(_experiment([tiny_llama[0]])))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["finetune", str(spec), "--out", str(run), "--quiet"]) == 2
    _one_line(capsys, "holds a run, not a fine-tuning experiment")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "experiment.json").write_text(json.dumps({"checkpoints": ["elsewhere"]}))
    assert main(["finetune", str(spec), "--out", str(other), "--quiet"]) == 2
    _one_line(capsys, "already holds an experiment with a different spec")
