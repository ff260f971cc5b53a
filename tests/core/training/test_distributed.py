"""Data-parallel meta-training: two real gloo ranks on the CPU stay in lock-step, average correctly, learn.

One ``torchrun --standalone --nproc-per-node 2`` launch (a free port, localhost, gloo) runs this file as a
script; each rank writes what it measured to a JSON file and the tests below assert on it. The launch is
module-scoped, so the two processes start once for the whole file (~30 s on two idle cores).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.meta import MetaLearner, Task, create_learner, list_learners
from core.models import create_model
from core.training.distributed import (
    DistContext,
    DistributedSetupError,
    find_unused_parameters,
    init_from_env,
    synthetic_probe,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
LEARNERS = tuple(list_learners())  # every registered family, the model-based one included
GRADIENT_FAMILY = ("maml", "fomaml", "anil", "metasgd")  # they adapt the head: every parameter is used
HEAD_FREE = ("protonet", "incontext")  # they classify without the model's head
TINY_HYPER: dict[str, dict[str, Any]] = {
    "protonet": {},
    "incontext": {"d_model": 16, "layers": 1, "heads": 2, "ff_mult": 1},
}
WAYS = 3
TRAIN_ITERATIONS = 30


# ----------------------------------------------------------------------------------------------- helpers
def _tiny_learner(name: str, *, ways: int = WAYS) -> MetaLearner:
    model = create_model("conv4", in_channels=1, n_way=ways, image_size=16, width=4)
    hyper = TINY_HYPER.get(name, {"inner_lr": 0.1, "inner_steps": 2})
    return create_learner(name, model, n_way=ways, **hyper)


def _random_tasks(seed: int, count: int, dtype: torch.dtype) -> list[Task]:
    """``count`` 3-way 2-shot 2-query tasks of random 16x16 grey images."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(WAYS).repeat_interleave(2)
    return [
        Task(
            torch.randn(WAYS * 2, 1, 16, 16, generator=gen, dtype=dtype),
            labels,
            torch.randn(WAYS * 2, 1, 16, 16, generator=gen, dtype=dtype),
            labels,
        )
        for _ in range(count)
    ]


def _max_grad_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    worst = 0.0
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        if pa.grad is None or pb.grad is None:
            if (pa.grad is None) != (pb.grad is None):
                return float("inf")
            continue
        worst = max(worst, float((pa.grad - pb.grad).abs().max()))
    return worst


def _grad_norm(module: torch.nn.Module) -> float:
    return float(sum(float((p.grad**2).sum()) for p in module.parameters() if p.grad is not None) ** 0.5)


# ------------------------------------------------------------------------- what each rank runs (torchrun)
def _gradient_check(ctx: DistContext, name: str) -> dict[str, Any]:
    """DDP's averaged meta-gradient vs one process computing the meta-loss of every rank's tasks (float64)."""
    import torch.distributed as dist

    torch.manual_seed(1000 + ctx.rank)  # deliberately different weights on each rank before wrapping
    learner = _tiny_learner(name).double()
    diverge_before = ctx.max_param_divergence(learner)
    ddp = ctx.wrap(learner)
    diverge_after = ctx.max_param_divergence(learner)
    tasks = _random_tasks(ctx.seed_for(11), 2, torch.float64)
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, tasks)
    everyone, own_only = copy.deepcopy(learner), copy.deepcopy(learner)

    loss, _ = ddp(tasks)
    untouched_by_forward = all(p.grad is None for p in learner.parameters())
    loss.backward()
    everyone.meta_loss([t for per_rank in gathered for t in per_rank])[0].backward()
    own_only.meta_loss(tasks)[0].backward()
    return {
        "reductions": _count_reductions(ctx, copy.deepcopy(learner), tasks),
        "find_unused": bool(ddp.find_unused_parameters),
        "unused": find_unused_parameters(copy.deepcopy(learner), tasks),
        "diverge_before": diverge_before,
        "diverge_after_wrap": diverge_after,
        "grads_none_after_forward": untouched_by_forward,
        "ddp_vs_all_tasks": _max_grad_diff(learner, everyone),
        "ddp_vs_own_tasks": _max_grad_diff(learner, own_only),
        "grad_norm": _grad_norm(everyone),
        "model_params": len(list(learner.model.parameters())),
        "lr_params_with_grad": sum(
            p.grad is not None for n, p in learner.named_parameters() if n.startswith("inner_lrs")
        ),
    }


def _count_reductions(ctx: DistContext, learner: MetaLearner, tasks: list[Task]) -> dict[str, int]:
    """Gradient buckets DDP all-reduces during forward (inner loop) and backward, over two iterations."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    phase = ["forward"]
    calls = {"forward": 0, "backward": 0}

    def counting_allreduce(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        calls[phase[0]] += 1
        return allreduce_hook(state, bucket)

    # DDP checks the hook's annotations by identity; `from __future__ import annotations` made them strings
    counting_allreduce.__annotations__ = {
        "state": Any,
        "bucket": dist.GradBucket,
        "return": torch.futures.Future[torch.Tensor],
    }

    ddp = ctx.wrap(learner)
    ddp.register_comm_hook(None, counting_allreduce)
    # two iterations: a reducer left waiting for an unused parameter only fails at the second forward
    for _ in range(2):
        phase[0] = "forward"
        loss, _ = ddp(tasks)
        phase[0] = "backward"
        loss.backward()
    return calls


def _train_data(data_zip: str) -> Any:
    """Omniglot's Latin alphabet (26 classes x 20) from the shared zip, or synthetic blobs without it."""
    from core.data import ImageFolderDataset
    from core.imaging.preprocess import Preprocess

    prep = Preprocess(image_size=28, channels=1)
    if data_zip:
        return ImageFolderDataset.from_path(data_zip, prep, subdir="omniglot28/background/Latin")
    rng = np.random.default_rng(0)
    examples = []
    for c in range(12):
        base = (rng.random((28, 28)) > 0.7).astype(np.float64) * 255
        for _ in range(10):
            noisy = np.clip(base + rng.normal(0, 40, (28, 28)), 0, 255).astype(np.uint8)
            examples.append((noisy, f"class{c:02d}"))
    return ImageFolderDataset.from_arrays(examples, prep)


def _train_check(ctx: DistContext, data_zip: str, out_dir: Path) -> dict[str, Any]:
    """Second-order MAML meta-trained by ``meta_train`` on both ranks; weights, loss and checkpoint."""
    from core.config import TrainConfig
    from core.data import EpisodeSampler
    from core.storage.checkpoint import load_checkpoint
    from core.training.meta_train import build_learner, meta_train

    dataset = _train_data(data_zip)
    config = TrainConfig(
        algo="maml", ways=5, shots=1, queries=5, meta_batch=2, inner_steps=1, inner_lr=0.4,
        outer_lr=3e-3, iterations=TRAIN_ITERATIONS, width=16, image_size=28, channels=1, seed=0,
        device="cpu", first_order=False,
    )  # fmt: skip
    learner = build_learner(config)
    fixed = EpisodeSampler(dataset, 5, 1, 5, seed=123).sample_batch(8)  # the same tasks on every rank
    loss_before = float(learner.meta_loss(fixed)[0].detach())
    ckpt = out_dir / "meta.pt"
    records = list(meta_train(config, dataset, learner=learner, out=ckpt))
    loss_after = float(learner.meta_loss(fixed)[0].detach())
    result: dict[str, Any] = {
        "records": len(records),
        "train_losses": [r.meta_loss for r in records],
        "fixed_loss_before": loss_before,
        "fixed_loss_after": loss_after,
        "diverge_after_training": ctx.max_param_divergence(learner),
        "checkpoints_reported": [r.checkpoint for r in records if r.checkpoint],
    }
    ctx.barrier()  # rank 0 has written the checkpoint before anyone reads it
    saved = load_checkpoint(ckpt).learner.state_dict()
    result["checkpoint_matches_weights"] = all(
        torch.equal(saved[k].cpu(), v.detach().cpu()) for k, v in learner.state_dict().items()
    )
    return result


def _worker(out_dir: Path, data_zip: str) -> None:
    torch.set_num_threads(1)  # two ranks on two cores: one thread each
    ctx = init_from_env("cpu", timeout_s=120)
    if ctx is None:
        raise SystemExit("the worker must run under torchrun with WORLD_SIZE > 1")
    try:
        t0 = time.perf_counter()
        result: dict[str, Any] = {
            "rank": ctx.rank,
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "is_main": ctx.is_main,
            "seed": ctx.seed_for(0),
            "mean_of_ranks": ctx.all_reduce_mean(float(ctx.rank)),
            "grad": {name: _gradient_check(ctx, name) for name in LEARNERS},
        }
        t1 = time.perf_counter()
        result["train"] = _train_check(ctx, data_zip, out_dir)
        result["seconds"] = {"gradient_checks": t1 - t0, "training": time.perf_counter() - t1}
    finally:
        ctx.close()
    (out_dir / f"rank{result['rank']}.json").write_text(json.dumps(result))


# ------------------------------------------------------------------------------------- the launch (pytest)
@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Run two gloo ranks with torchrun and return what each wrote (rank order)."""
    out = tmp_path_factory.mktemp("ddp")
    data = os.environ.get("METAINSPECT_DATASETS") or str(REPO_ROOT.parent / "shared" / "datasets")
    omniglot = Path(data) / "omniglot28.zip"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(Path(__file__).resolve()), str(out), str(omniglot) if omniglot.is_file() else "",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (
        f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_two_gloo_ranks_form_a_group_and_only_rank_0_is_main(ranks: list[dict[str, Any]]) -> None:
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    assert [r["is_main"] for r in ranks] == [True, False]
    assert all(r["mean_of_ranks"] == 0.5 for r in ranks)


@pytest.mark.slow
def test_each_rank_gets_its_own_sampler_seed(ranks: list[dict[str, Any]]) -> None:
    assert ranks[0]["seed"] != ranks[1]["seed"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_wrapping_copies_rank_0_weights_to_every_rank(ranks: list[dict[str, Any]], name: str) -> None:
    for r in ranks:
        assert r["grad"][name]["diverge_before"] > 0  # the ranks really started from different weights
        assert r["grad"][name]["diverge_after_wrap"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_ddp_meta_gradient_equals_one_process_gradient_over_all_ranks_tasks(
    ranks: list[dict[str, Any]], name: str
) -> None:
    for r in ranks:
        g = r["grad"][name]
        assert g["grad_norm"] > 1e-6
        # float64: the allreduced mean equals the single-process meta-gradient of both ranks' tasks
        assert g["ddp_vs_all_tasks"] < 1e-10 * max(1.0, g["grad_norm"])
        # ... and is not just this rank's own gradient (the averaging really happened)
        assert g["ddp_vs_own_tasks"] > 1e-4 * g["grad_norm"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_inner_loop_gradients_neither_accumulate_nor_trigger_reduction(
    ranks: list[dict[str, Any]], name: str
) -> None:
    # autograd.grad(create_graph=True) inside forward must leave .grad empty and DDP's reducer idle;
    # the reduction happens in the outer backward only
    for r in ranks:
        assert r["grad"][name]["grads_none_after_forward"]
        assert r["grad"][name]["reductions"]["forward"] == 0
        assert r["grad"][name]["reductions"]["backward"] >= 2  # at least one bucket per iteration


@pytest.mark.slow
def test_ddp_searches_for_unused_parameters_exactly_when_the_learner_has_some(
    ranks: list[dict[str, Any]],
) -> None:
    head = ["model.head.weight", "model.head.bias"]
    for r in ranks:
        for name, g in r["grad"].items():
            assert g["find_unused"] is bool(g["unused"]), name
            if name in HEAD_FREE:
                assert g["unused"] == head, name
            if name in GRADIENT_FAMILY:
                assert g["unused"] == [], name


@pytest.mark.slow
def test_metasgd_learning_rates_get_synchronised_meta_gradients(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        g = r["grad"]["metasgd"]
        # one learned rate tensor per model parameter, each with an allreduced meta-gradient (checked above)
        assert g["lr_params_with_grad"] == g["model_params"] > 0


@pytest.mark.slow
def test_ranks_stay_identical_after_adam_steps_and_loss_falls(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        t = r["train"]
        assert t["diverge_after_training"] == 0.0  # bitwise identical weights on both ranks
        assert t["fixed_loss_after"] < t["fixed_loss_before"] - 0.05
    losses = ranks[0]["train"]["train_losses"]
    assert len(losses) == TRAIN_ITERATIONS
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    # the ranks measured the same fixed tasks on the same weights
    assert ranks[0]["train"]["fixed_loss_after"] == ranks[1]["train"]["fixed_loss_after"]


@pytest.mark.slow
def test_only_rank_0_reports_and_writes_the_checkpoint(ranks: list[dict[str, Any]]) -> None:
    assert ranks[0]["train"]["records"] == TRAIN_ITERATIONS
    assert ranks[1]["train"]["records"] == 0
    assert len(ranks[0]["train"]["checkpoints_reported"]) == 1
    assert all(r["train"]["checkpoint_matches_weights"] for r in ranks)


# --------------------------------------------------------------------------- in-process (no process group)
def test_without_torchrun_environment_init_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu") is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_from_env("cpu") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "two"}, "not an integer"),
        ({"WORLD_SIZE": "2"}, "RANK"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR, MASTER_PORT"),
    ],
)
def test_incomplete_torchrun_environment_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedSetupError, match=message):
        init_from_env("cpu")


def test_nccl_without_cuda_is_refused_before_joining(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "WORLD_SIZE": "2",
        "RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedSetupError, match="NCCL backend needs CUDA"):
        init_from_env("cpu", backend="nccl")


def test_seeds_differ_across_ranks_and_repeat_for_the_same_base_seed() -> None:
    contexts = [DistContext(r, 64, r, torch.device("cpu"), "gloo") for r in range(64)]
    seeds = [c.seed_for(7) for c in contexts]
    assert len(set(seeds)) == 64
    assert seeds == [c.seed_for(7) for c in contexts]
    assert seeds != [c.seed_for(8) for c in contexts]
    assert all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="base_seed"):
        contexts[0].seed_for(-1)


def test_wrap_refuses_a_module_that_is_not_a_meta_learner() -> None:
    ctx = DistContext(0, 2, 0, torch.device("cpu"), "gloo")
    with pytest.raises(TypeError, match="MetaLearner"):
        ctx.wrap(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_synthetic_probe_finds_protonet_head_unused_and_maml_using_everything() -> None:
    for name, expected in (("protonet", ["model.head.weight", "model.head.bias"]), ("maml", [])):
        learner = _tiny_learner(name)
        probe = synthetic_probe(learner)
        assert probe is not None and probe[0].support_x.shape == (WAYS * 2, 1, 16, 16)
        assert find_unused_parameters(learner, probe) == expected
        assert all(p.grad is None for p in learner.parameters())  # probing accumulates nothing


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
