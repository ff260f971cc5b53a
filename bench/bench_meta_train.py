"""Meta-training throughput and peak memory: our functional learners vs learn2learn 0.2.0 and higher 0.2.1.

Conv-4 on Omniglot (read straight from ../shared/datasets/omniglot28.zip), N-way K-shot, Q queries per class,
meta-batch B, Adam outer step. Speed: the implementations run interleaved, iteration by iteration on the same
batches, in one process (a changing machine load hits them alike); CPU time is reported beside wall time.
Peak RSS: each implementation alone in its own process.
The peers are optional: they live only in a separate bench venv (``--peer-python /tmp/benchvenv/bin/python``)
and are skipped when absent; our side always runs.

    nice -n 10 .venv/bin/python bench/bench_meta_train.py --peer-python /tmp/benchvenv/bin/python
    nice -n 10 .venv/bin/python bench/bench_meta_train.py --image-size 84 --channels 3 --shots 5 \
        --steps 5 --orders 2 --meta-batch 2 --impls ours,learn2learn
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = REPO.parent / "shared" / "datasets" / "omniglot28.zip"


# -- data ---------------------------------------------------------------------------------------------------------
def load_omniglot(
    zip_path: Path, n_classes: int, image_size: int, channels: int, split: str = "background"
) -> Any:
    """First ``n_classes`` characters of ``split`` as a float tensor (classes, 20, C, S, S) in [0, 1]."""
    import cv2
    import numpy as np
    import torch

    by_class: dict[str, list[bytes]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for name in sorted(zf.namelist()):
            if f"/{split}/" in name and name.endswith(".png"):
                key = name.rsplit("/", 1)[0]
                if key in by_class or len(by_class) < n_classes:
                    by_class.setdefault(key, []).append(zf.read(name))
    arrays = []
    for files in by_class.values():
        imgs = []
        for raw in files[:20]:
            img = cv2.imdecode(np.frombuffer(io.BytesIO(raw).getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE)
            if img.shape[0] != image_size:
                img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
            imgs.append(img)
        arrays.append(np.stack(imgs))
    data = torch.from_numpy(np.stack(arrays)).float().div_(255.0).unsqueeze(2)  # (classes, 20, 1, S, S)
    return data.expand(-1, -1, channels, -1, -1).contiguous() if channels > 1 else data


def sample_task(data: Any, ways: int, shots: int, queries: int, gen: Any) -> tuple[Any, Any, Any, Any]:
    import torch

    classes = torch.randperm(data.shape[0], generator=gen)[:ways]
    sx, qx = [], []
    for c in classes:
        idx = torch.randperm(data.shape[1], generator=gen)[: shots + queries]
        sx.append(data[c, idx[:shots]])
        qx.append(data[c, idx[shots:]])
    sy = torch.arange(ways).repeat_interleave(shots)
    qy = torch.arange(ways).repeat_interleave(queries)
    return torch.cat(sx), sy, torch.cat(qx), qy


# -- one implementation's outer step ------------------------------------------------------------------------------
def make_step(impl: str, model: Any, steps: int, second_order: bool, inner_lr: float) -> Any:
    """Return ``step(tasks) -> float`` doing one meta-iteration (meta-loss, backward, Adam step)."""
    import torch
    import torch.nn.functional as F

    if impl == "ours":
        sys.path.insert(0, str(REPO))
        from core.meta import Task, create_learner

        learner = create_learner(
            "maml",
            model,
            n_way=model.head.out_features,
            inner_lr=inner_lr,
            inner_steps=steps,
            first_order=not second_order,
        )
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)

        def step(tasks: list) -> float:
            loss, _ = learner.meta_loss([Task(*t) for t in tasks])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss.detach())

        return step

    if impl == "learn2learn":
        maml_cls = _import_l2l_maml()
        maml = maml_cls(model, lr=inner_lr, first_order=not second_order)
        opt = torch.optim.Adam(maml.parameters(), lr=1e-3)

        def step(tasks: list) -> float:
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for sx, sy, qx, qy in tasks:
                learner = maml.clone()
                for _ in range(steps):
                    learner.adapt(F.cross_entropy(learner(sx), sy))
                loss = F.cross_entropy(learner(qx), qy) / len(tasks)
                loss.backward()
                total += float(loss.detach())
            opt.step()
            return total

        return step

    if impl == "higher":
        import higher

        if not second_order:
            raise ValueError(
                "higher has no first-order MAML: track_higher_grads=False cuts the meta-gradient"
            )
        inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(tasks: list) -> float:
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for sx, sy, qx, qy in tasks:
                with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                    for _ in range(steps):
                        diffopt.step(F.cross_entropy(fmodel(sx), sy))
                    loss = F.cross_entropy(fmodel(qx), qy) / len(tasks)
                    loss.backward()
                    total += float(loss.detach())
            opt.step()
            return total

        return step
    raise ValueError(f"unknown implementation {impl!r}")


def _import_l2l_maml() -> Any:
    """Import ``learn2learn.algorithms.maml`` without running ``learn2learn/__init__`` (it needs torchvision)."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("learn2learn")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("learn2learn is not installed in this interpreter")
    root = Path(next(iter(spec.submodule_search_locations)))
    for pkg, sub in (("learn2learn", root), ("learn2learn.algorithms", root / "algorithms")):
        if pkg not in sys.modules:
            stub = types.ModuleType(pkg)
            stub.__path__ = [str(sub)]
            sys.modules[pkg] = stub
    from learn2learn.algorithms.maml import MAML

    return MAML


# -- workers --------------------------------------------------------------------------------------------------------
def _setup(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO))
    data = load_omniglot(Path(args.zip), 100, args.image_size, args.channels)
    return data, torch.Generator().manual_seed(1)


def _model(args: argparse.Namespace) -> Any:
    import torch

    sys.path.insert(0, str(REPO))
    from core.models import create_model

    torch.manual_seed(0)
    return create_model(
        "conv4", in_channels=args.channels, n_way=args.ways, image_size=args.image_size, width=args.width
    )


def speed_worker(args: argparse.Namespace) -> None:
    """All implementations in one process, interleaved iteration by iteration on identical batches, so a
    changing machine load hits them alike. Reports wall-clock and process-CPU iterations per second."""
    data, gen = _setup(args)
    steps = {
        impl: make_step(impl, _model(args), args.steps, args.order == 2, args.inner_lr) for impl in args.impls
    }
    wall: dict[str, list[float]] = {impl: [] for impl in args.impls}
    cpu: dict[str, list[float]] = {impl: [] for impl in args.impls}
    for i in range(args.warmup + args.iterations):
        batch = [sample_task(data, args.ways, args.shots, args.queries, gen) for _ in range(args.meta_batch)]
        for impl, step in steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            step(batch)
            if i >= args.warmup:
                wall[impl].append(time.perf_counter() - w0)
                cpu[impl].append(time.process_time() - c0)
    print(json.dumps({"wall": wall, "cpu": cpu}))


def memory_worker(args: argparse.Namespace) -> None:
    """One implementation alone in its process: peak RSS after a few meta-iterations."""
    data, gen = _setup(args)
    step = make_step(args.impls[0], _model(args), args.steps, args.order == 2, args.inner_lr)
    for _ in range(args.warmup + 1):
        step([sample_task(data, args.ways, args.shots, args.queries, gen) for _ in range(args.meta_batch)])
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_worker(
    python: str, mode: str, impls: list[str], steps: int, order: int, args: argparse.Namespace
) -> Any:
    cmd = [
        python, __file__, "--worker", mode, "--impls", ",".join(impls), "--steps", str(steps),
        "--order", str(order), "--zip", str(args.zip), "--ways", str(args.ways), "--shots", str(args.shots),
        "--queries", str(args.queries), "--meta-batch", str(args.meta_batch), "--image-size",
        str(args.image_size), "--channels", str(args.channels), "--width", str(args.width),
        "--threads", str(args.threads), "--iterations", str(args.iterations),
        "--warmup", str(args.warmup), "--inner-lr", str(args.inner_lr),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return f"n/a ({last[:90]})"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _peers_available(python: str) -> list[str]:
    code = (
        "import importlib.util as u; "
        "print(','.join(n for n in ('learn2learn', 'higher') if u.find_spec(n) is not None))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False).stdout.strip()
    return [n for n in out.split(",") if n]


def norm_study(args: argparse.Namespace) -> None:
    """BatchNorm (per-task statistics) vs GroupNorm: accuracy with queries predicted as one batch and one
    image at a time (as the live app does). See docs/adr/0001."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from core.meta import Task, create_learner
    from core.models import create_model

    torch.set_num_threads(args.threads)
    iters, episodes = args.norm_study, args.study_episodes
    background = load_omniglot(Path(args.zip), 400, 28, 1)
    evaluation = load_omniglot(Path(args.zip), 200, 28, 1, split="evaluation")

    def task(data: Any, gen: Any) -> Task:
        return Task(*sample_task(data, args.ways, args.shots, args.queries, gen))

    print(
        "| learner | norm | meta-iterations | episodes | acc, batch of queries | acc, one image at a time |"
    )
    print("|---|---|---|---|---|---|")
    for norm in ("batch", "group"):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        model = create_model("conv4", n_way=args.ways, norm=norm)
        learner = create_learner(
            args.study_learner, model, n_way=args.ways, inner_lr=args.inner_lr, inner_steps=1
        )
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
        for _ in range(iters):
            loss, _ = learner.meta_loss([task(background, gen) for _ in range(args.meta_batch)])
            opt.zero_grad()
            loss.backward()
            opt.step()
        gen = torch.Generator().manual_seed(123)
        batched, single = [], []
        for _ in range(episodes):
            t = task(evaluation, gen)
            adapted = learner.adapt(t.support_x, t.support_y, steps=3)
            batched.append(float((adapted.predict(t.query_x) == t.query_y).float().mean()))
            adapted.chunk_size = 1
            single.append(float((adapted.predict(t.query_x) == t.query_y).float().mean()))
        print(
            f"| {args.study_learner} | {norm} | {iters} | {episodes} | {np.mean(batched):.3f} | "
            f"{np.mean(single):.3f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--impls", default="ours,learn2learn,higher")
    parser.add_argument("--peer-python", default=None, help="interpreter of the bench venv holding the peers")
    parser.add_argument("--zip", default=str(DEFAULT_ZIP))
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--steps", default="1,5", help="inner steps to measure, comma-separated")
    parser.add_argument("--orders", default="1,2", help="1 = first order, 2 = second order")
    parser.add_argument("--order", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations; 0 = peak RSS only")
    parser.add_argument("--norm-study", type=int, default=0, help="run the ADR 0001 norm study, N iterations")
    parser.add_argument("--study-learner", default="protonet")
    parser.add_argument("--study-episodes", type=int, default=100)
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-RSS runs")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if args.norm_study:
        norm_study(args)
        return
    if args.worker:
        args.steps = int(args.steps)
        args.impls = args.impls.split(",")
        (speed_worker if args.worker == "speed" else memory_worker)(args)
        return

    wanted = [i.strip() for i in args.impls.split(",") if i.strip()]
    python = args.peer_python or sys.executable
    present = _peers_available(python)
    impls = [i for i in wanted if i == "ours" or i in present]
    skipped = [i for i in wanted if i not in impls]
    print(
        f"Conv-4 width {args.width}, Omniglot {args.image_size}px x{args.channels}ch, {args.ways}-way "
        f"{args.shots}-shot {args.queries} queries/class, meta-batch {args.meta_batch}, threads {args.threads}, "
        f"{args.iterations} timed iterations after {args.warmup} warm-up, implementations interleaved in one "
        f"process ({python}); load: {os.getloadavg()}" + (f"; not installed: {skipped}" if skipped else "")
    )
    print(
        "| inner steps | order | impl | meta-it/s (CPU time) | meta-it/s (wall) | peak RSS MB | ours vs impl (CPU) |"
    )
    print("|---|---|---|---|---|---|---|")
    for steps in [int(s) for s in args.steps.split(",")]:
        for order in [int(o) for o in args.orders.split(",")]:
            # higher has no first-order MAML: track_higher_grads=False cuts the meta-gradient altogether
            group = [i for i in impls if not (i == "higher" and order == 1)]
            if args.iterations == 0:  # memory only
                for impl in group:
                    mem = run_worker(python, "memory", [impl], steps, order, args)
                    rss = f"{mem['peak_rss_mb']:.0f}" if isinstance(mem, dict) else mem
                    print(f"| {steps} | {order} | {impl} | not timed | not timed | {rss} | |")
                    sys.stdout.flush()
                continue
            res = run_worker(python, "speed", group, steps, order, args)
            if isinstance(res, str):
                print(f"| {steps} | {order} | {','.join(group)} | {res} | | | |")
                continue
            cpu = {i: len(v) / sum(v) for i, v in res["cpu"].items()}
            wall = {i: len(v) / sum(v) for i, v in res["wall"].items()}
            for impl in group:
                mem = run_worker(python, "memory", [impl], steps, order, args) if args.memory else None
                rss = f"{mem['peak_rss_mb']:.0f}" if isinstance(mem, dict) else (mem or "")
                rel = f"{cpu['ours'] / cpu[impl]:.2f}x" if impl != "ours" and "ours" in cpu else ""
                print(f"| {steps} | {order} | {impl} | {cpu[impl]:.2f} | {wall[impl]:.2f} | {rss} | {rel} |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
