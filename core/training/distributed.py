"""Data-parallel meta-training across processes and machines (``torchrun`` + DistributedDataParallel).

Each rank samples its own tasks (seeded with :meth:`DistContext.seed_for`), computes the meta-loss of its
meta-batch, and DistributedDataParallel averages the meta-gradients over the ranks during ``backward()``,
so every rank applies the same optimiser step to the same weights. The result equals one process
meta-training on the union of all ranks' meta-batches (see docs/adr/0006-distributed-meta-training.md).

Typical use inside a meta-training loop::

    ctx = init_from_env()                      # None unless launched by torchrun with WORLD_SIZE > 1
    seed = ctx.seed_for(cfg.seed) if ctx else cfg.seed
    step_fn = ctx.wrap(learner, probe_tasks=first_batch) if ctx else learner.meta_loss
    optimiser = torch.optim.Adam(learner.parameters(), lr)   # the learner's own parameters
    loss, metrics = step_fn(tasks); loss.backward(); optimiser.step()
    if ctx is None or ctx.is_main: save_checkpoint(...)      # only rank 0 writes
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core.meta import MetaLearner, Task
from core.runtime import resolve_device

BACKENDS = ("gloo", "nccl")
_SEED_BITS = 63  # torch.manual_seed and numpy both accept any non-negative int64
_RANK_BITS = 24  # the low bits of a rank's seed are its rank, so seeds differ on every rank by construction


class DistributedSetupError(ValueError):
    """The torchrun environment or the requested backend/device cannot form a process group.

    A ``ValueError``: it is the launch command that needs fixing, and the CLI reports it in one line.
    """


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise DistributedSetupError(
            f"environment variable {name}={value!r} is not an integer; launch with "
            "`torchrun --nproc-per-node N ...` (or `python -m torch.distributed.run`), which sets it"
        ) from exc


def find_unused_parameters(learner: nn.Module, tasks: Sequence[Task]) -> list[str]:
    """Names of trainable parameters that the meta-loss of ``tasks`` does not depend on.

    ProtoNet never calls the classifier head; DDP must then be told to look for unused parameters,
    or its reducer waits for their gradients forever and the next step fails.

    Parameters
    ----------
    learner
        A MetaLearner (``meta_loss(tasks) -> (loss, metrics)``).
    tasks
        One meta-batch to trace; nothing is accumulated into ``.grad`` and no optimiser step is taken.
    """
    named = [(name, p) for name, p in learner.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"{type(learner).__name__} has no trainable parameters to meta-train")
    loss, _ = learner.meta_loss(list(tasks))
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return [name for (name, _), grad in zip(named, grads, strict=True) if grad is None]


def synthetic_probe(learner: MetaLearner, *, shots: int = 2, seed: int = 0) -> list[Task] | None:
    """One tiny random task shaped for ``learner``'s model, to trace which parameters the meta-loss uses.

    Which parameters are unused is a property of the learner's code (ProtoNet never calls the head), not of
    the pixels, so random images answer it. The generator is seeded, so every rank builds the same task.

    Returns
    -------
    list[Task] | None
        ``[Task]`` with support ``(n_way * shots, C, S, S)`` and query ``(n_way, C, S, S)``, or None when
        the model does not declare ``in_channels`` (the caller then assumes parameters may be unused).
    """
    model = learner.model
    channels = getattr(model, "in_channels", None)
    if not isinstance(channels, int):
        return None
    side = getattr(model, "image_size", None) or 32
    param = next(iter(learner.parameters()), None)
    dtype = param.dtype if param is not None else torch.float32
    n = learner.n_way
    gen = torch.Generator().manual_seed(seed)
    support = torch.randn(n * shots, channels, side, side, generator=gen, dtype=dtype)
    query = torch.randn(n, channels, side, side, generator=gen, dtype=dtype)
    return [Task(support, torch.arange(n).repeat_interleave(shots), query, torch.arange(n))]


@dataclasses.dataclass(frozen=True)
class DistContext:
    """One process's place in a data-parallel meta-training run.

    Attributes
    ----------
    rank, world_size, local_rank
        Global rank, number of processes, and rank on this machine (from torchrun's environment).
    device
        ``cuda:<local_rank>`` under NCCL, ``cpu`` under gloo.
    backend
        ``"nccl"`` or ``"gloo"``.
    owns_group
        Whether :meth:`close` tears the default process group down (False when it existed already).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    owns_group: bool = True

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes checkpoints and prints progress."""
        return self.rank == 0

    def seed_for(self, base_seed: int) -> int:
        """A seed for this rank's task sampler and augmentation, different on every rank.

        The high bits come from ``numpy.random.SeedSequence(base_seed, spawn_key=(rank,))`` (numpy's way to
        give parallel workers independent streams), the low 24 bits are the rank itself, so no two ranks
        ever share a seed and a run is reproducible for a given base seed.

        Raises
        ------
        ValueError
            For a negative ``base_seed``.
        """
        if int(base_seed) < 0:
            raise ValueError(f"base_seed must be >= 0, got {base_seed}")
        state = np.random.SeedSequence(int(base_seed), spawn_key=(self.rank,)).generate_state(1, np.uint64)
        high = (int(state[0]) >> (64 - _SEED_BITS + _RANK_BITS)) << _RANK_BITS
        return high | self.rank

    def wrap(
        self,
        learner: nn.Module,
        *,
        probe_tasks: Sequence[Task] | None = None,
        find_unused: bool | None = None,
    ) -> DistributedDataParallel:
        """Move ``learner`` to this rank's device and wrap it in DDP.

        Parameters
        ----------
        learner
            A MetaLearner; every parameter it holds (backbone, head, Meta-SGD learning rates) is
            synchronised. At construction DDP copies rank 0's parameters and buffers to all ranks.
        probe_tasks
            Tasks used to find parameters the meta-loss never touches (e.g. ProtoNet's head) when
            ``find_unused`` is None; default: :func:`synthetic_probe` (one random task, same on every rank).
        find_unused
            Force DDP's ``find_unused_parameters``. None: trace the probe and set it only when a parameter
            is unused (searching costs a graph traversal every step, and DDP warns when it finds nothing).

        Returns
        -------
        DistributedDataParallel
            Calling it with a list of tasks returns ``learner.meta_loss(tasks)``; call ``loss.backward()``
            (never ``torch.autograd.grad``) so DDP averages the meta-gradients across ranks.
        """
        if not isinstance(learner, MetaLearner):
            raise TypeError(
                f"wrap() needs a MetaLearner (from core.meta.create_learner), got {type(learner).__name__}"
            )
        learner.to(self.device)
        if find_unused is None:
            probe = list(probe_tasks) if probe_tasks is not None else synthetic_probe(learner)
            find_unused = True if probe is None else bool(find_unused_parameters(learner, probe))
        # Every rank must give DDP the same setting, or the reducers disagree on which gradients to
        # wait for and the collectives hang; any rank that saw an unused parameter decides for all.
        find_unused = bool(self._all_gather_ints([int(find_unused)]).max())
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # MetaLearner.forward is meta_loss, and meta_loss moves each Task to the model's device itself
        # (DDP's own input mover does not look inside dataclasses).
        return DistributedDataParallel(learner, device_ids=device_ids, find_unused_parameters=find_unused)

    def all_reduce_mean(self, x: float) -> float:
        """Mean of ``x`` over all ranks (e.g. the meta-loss, for the progress line rank 0 prints)."""
        t = torch.tensor([float(x)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def max_param_divergence(self, module: nn.Module) -> float:
        """Largest absolute difference between any rank's parameters and rank 0's (0.0 when in sync).

        Every rank must call it (it all-gathers a flat copy of the parameters).
        """
        params = [p.detach().reshape(-1).to(torch.float64) for p in module.parameters()]
        if not params:
            return 0.0
        flat = torch.cat(params)
        gathered = [torch.empty_like(flat) for _ in range(self.world_size)]
        dist.all_gather(gathered, flat)
        return max(float((g - gathered[0]).abs().max().item()) for g in gathered)

    def barrier(self) -> None:
        """Wait until every rank reaches this point (e.g. before rank 0 reports a finished checkpoint)."""
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (only if :func:`init_from_env` created it)."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def _all_gather_ints(self, values: list[int]) -> torch.Tensor:
        t = torch.tensor(values, dtype=torch.int64, device=self.device)
        gathered = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(gathered, t)
        return torch.stack(gathered).cpu()


def init_from_env(
    device: str = "auto", *, backend: str | None = None, timeout_s: float = 1800.0
) -> DistContext | None:
    """Join the process group torchrun describes in the environment, or return None when not distributed.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``; pass the run's own device setting.
        With CUDA each rank uses ``cuda:<LOCAL_RANK>`` (one GPU per process; a ``cuda:N`` index is ignored).
    backend
        ``"nccl"`` or ``"gloo"``; default NCCL for CUDA, gloo for CPU.
    timeout_s
        How long a collective waits for a missing rank before failing (instead of hanging for ever).

    Returns
    -------
    DistContext | None
        None when ``WORLD_SIZE`` is unset or 1 (a plain single-process run needs no DDP).

    Raises
    ------
    DistributedSetupError
        Incomplete torchrun environment, NCCL without CUDA, or fewer GPUs than local ranks.
    """
    world_size = _env_int("WORLD_SIZE")
    if world_size is None or world_size == 1:
        return None
    if not 1 <= world_size <= 1 << _RANK_BITS:
        raise DistributedSetupError(f"WORLD_SIZE must be between 1 and {1 << _RANK_BITS}, got {world_size}")
    rank = _env_int("RANK")
    if rank is None or not 0 <= rank < world_size:
        raise DistributedSetupError(
            f"WORLD_SIZE={world_size} but RANK={os.environ.get('RANK')!r}; launch through torchrun, "
            "which sets RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process"
        )
    local_rank = _env_int("LOCAL_RANK") or 0
    if dist.is_initialized():
        group_backend = str(dist.get_backend())
        dev = _rank_device(resolve_device(device), local_rank)
        return DistContext(rank, world_size, local_rank, dev, group_backend, owns_group=False)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise DistributedSetupError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} unset; launch through torchrun"
        )
    base = resolve_device(device)
    chosen = backend or ("nccl" if base.type == "cuda" else "gloo")
    if chosen not in BACKENDS:
        raise DistributedSetupError(f"unknown backend {chosen!r}; choose one of {', '.join(BACKENDS)}")
    if chosen == "nccl" and base.type != "cuda":
        raise DistributedSetupError("the NCCL backend needs CUDA devices; use gloo (the default) on CPUs")
    dev = _rank_device(base, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    else:
        _share_cpu_cores(_env_int("LOCAL_WORLD_SIZE") or 1)
    dist.init_process_group(
        backend=chosen,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=dev if chosen == "nccl" else None,
    )
    return DistContext(rank, world_size, local_rank, dev, chosen)


def _rank_device(base: torch.device, local_rank: int) -> torch.device:
    """``cuda:<local_rank>`` for a CUDA setting (one GPU per process), else the CPU."""
    if base.type != "cuda":
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DistributedSetupError(
            f"LOCAL_RANK={local_rank} but this machine has {count} CUDA device(s); start at most "
            f"{count} processes per node (--nproc-per-node {count}) or use --device cpu with gloo"
        )
    return torch.device("cuda", local_rank)


def _share_cpu_cores(local_ranks: int) -> None:
    """Cap this rank's intra-op threads at its share of the machine's cores.

    Every rank starting with all cores (``set_cpu_threads()``'s default) oversubscribes the CPU ``local_ranks``
    times over and each step slows down several-fold; a smaller explicit setting is kept.
    """
    share = max(1, (os.cpu_count() or 1) // max(1, local_ranks))
    if torch.get_num_threads() > share:
        torch.set_num_threads(share)
