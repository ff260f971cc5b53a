"""Greedy coreset subsampling and exact nearest-neighbour distances (torch, chunked).

The coreset (Sener & Savarese 2018, as used by PatchCore) picks bank points one at a time, each the point
farthest from those picked so far: the bank then covers every region of feature space the OK patches visit,
rare ones included, which a random cut of the same size does not (a rare-but-normal patch left out of the bank
scores as an anomaly). Distances during selection use a Johnson-Lindenstrauss random projection to
``projection_dim`` dimensions, as in the paper, which keeps each step a cheap matrix-vector product.

Nearest neighbours are exact brute force (``|a|^2 - 2ab + |b|^2`` with one matrix product per chunk): with a
bank of at most ~16k points of ~100-200 dimensions this is a few tens of MFLOP per part, faster on a CPU than
building an approximate index, and it needs no extra package (faiss-cpu would only pay for far larger banks).
"""

from __future__ import annotations

import math

import torch

#: Rows of queries per distance chunk: bounds the temporary (chunk x bank) matrix to ~32 MB for 8k points.
QUERY_CHUNK = 1024


def greedy_coreset(
    features: torch.Tensor, size: int, *, projection_dim: int = 128, seed: int = 0
) -> torch.Tensor:
    """Indices of a greedy k-center coreset of ``features``.

    Parameters
    ----------
    features
        ``(N, D)`` points.
    size
        Points to keep; all of them (``arange(N)``) when ``size >= N``.
    projection_dim
        Dimension of the random projection used for the selection distances (none when ``D`` is not larger).
    seed
        Seeds the projection and the first point.

    Returns
    -------
    torch.Tensor
        ``(min(size, N),)`` int64 indices, distinct, in the order they were picked.

    Raises
    ------
    ValueError
        ``features`` is not a non-empty 2-D tensor, or ``size < 1``.
    """
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"expected (N, D) features with N >= 1, got shape {tuple(features.shape)}")
    if size < 1:
        raise ValueError(f"coreset size must be at least 1, got {size}")
    n, d = features.shape
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = features.float()
    if d > projection_dim:
        proj = torch.randn(d, projection_dim, generator=gen) / math.sqrt(projection_dim)
        x = x @ proj.to(x.device)
    x = x.contiguous()
    sq = (x * x).sum(1)
    first = int(torch.randint(n, (1,), generator=gen))
    picked = torch.empty(size, dtype=torch.long)
    picked[0] = first
    # squared distances to the nearest picked point; the loop is memory-bound, so it reuses two buffers
    min_d = torch.addmv(sq, x, x[first], alpha=-2.0).add_(sq[first])
    step = torch.empty_like(min_d)
    nxt = first
    for i in range(1, size):
        nxt = int(torch.argmax(min_d))
        picked[i] = nxt
        torch.addmv(sq, x, x[nxt], alpha=-2.0, out=step)
        step.add_(sq[nxt])
        torch.minimum(min_d, step, out=min_d)
    return picked


def nearest_distances(
    queries: torch.Tensor,
    bank: torch.Tensor,
    *,
    bank_sq: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
    bank_source: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query to its nearest bank point, and that point's index.

    Parameters
    ----------
    queries
        ``(Q, D)``.
    bank
        ``(M, D)``, ``M >= 1``.
    bank_sq
        ``(M,)`` squared norms of the bank rows (computed when not given).
    exclude, bank_source
        Optional leave-one-out: bank rows whose ``bank_source`` equals the query's ``exclude`` value (both
        int tensors, ``(M,)`` and ``(Q,)``) are not candidates.

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        ``(Q,)`` float32 distances and ``(Q,)`` int64 indices into the bank.
    """
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(
            f"queries {tuple(queries.shape)} and bank {tuple(bank.shape)} must be (Q, D) and (M, D)"
        )
    if bank.shape[0] == 0:
        raise ValueError("the memory bank is empty")
    if bank_sq is None:
        bank_sq = (bank * bank).sum(1)
    dists = torch.empty(queries.shape[0], dtype=torch.float32, device=queries.device)
    idx = torch.empty(queries.shape[0], dtype=torch.long, device=queries.device)
    for start in range(0, queries.shape[0], QUERY_CHUNK):
        q = queries[start : start + QUERY_CHUNK]
        d2 = torch.addmm(bank_sq[None, :], q, bank.T, alpha=-2.0)  # (q, M) = |b|^2 - 2 q.b
        if exclude is not None and bank_source is not None:
            mask = bank_source[None, :] == exclude[start : start + QUERY_CHUNK, None]
            d2.masked_fill_(mask, float("inf"))
        best, where = d2.min(dim=1)
        best = best + (q * q).sum(1)
        dists[start : start + q.shape[0]] = best.clamp_min_(0.0).sqrt_()
        idx[start : start + q.shape[0]] = where
    return dists, idx
