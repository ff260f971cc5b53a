"""Greedy coreset and exact nearest neighbours: the properties the anomaly bank relies on."""

from __future__ import annotations

import pytest
import torch

from core.inference.coreset import greedy_coreset, nearest_distances


def _clustered(seed: int = 0) -> torch.Tensor:
    """1000 points round the origin and 5 in a far, rare cluster (a rare but normal patch look)."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(1000, 16, generator=g)
    rare = torch.randn(5, 16, generator=g) * 0.1 + 20.0
    return torch.cat([common, rare])


def _covering_radius(points: torch.Tensor, picked: torch.Tensor) -> float:
    d, _ = nearest_distances(points, points[picked])
    return float(d.max())


def test_coreset_has_the_asked_size_and_distinct_indices() -> None:
    x = _clustered()
    idx = greedy_coreset(x, 50)
    assert idx.shape == (50,) and idx.dtype == torch.long
    assert len(set(idx.tolist())) == 50
    assert int(idx.min()) >= 0 and int(idx.max()) < len(x)


def test_coreset_keeps_everything_when_asked_for_more_than_there_is() -> None:
    x = _clustered()
    assert torch.equal(greedy_coreset(x, 5000), torch.arange(len(x)))


def test_coreset_keeps_the_rare_cluster_a_random_cut_of_the_same_size_misses() -> None:
    x = _clustered()
    picked = greedy_coreset(x, 20)
    assert any(int(i) >= 1000 for i in picked), "the far cluster must be represented"
    g = torch.Generator().manual_seed(1)
    random_cut = torch.randperm(len(x), generator=g)[:20]
    assert _covering_radius(x, picked) < 0.5 * _covering_radius(x, random_cut)


def test_coreset_with_a_random_projection_still_covers_well() -> None:
    x = torch.cat([_clustered(), _clustered(1)[:, :8].repeat(1, 2)], dim=1)  # 32 dims
    projected = greedy_coreset(x, 40, projection_dim=8)
    exact = greedy_coreset(x, 40, projection_dim=64)
    assert _covering_radius(x, projected) < 1.5 * _covering_radius(x, exact)


def test_coreset_is_reproducible_for_a_seed() -> None:
    x = _clustered()
    assert torch.equal(greedy_coreset(x, 30, seed=3), greedy_coreset(x, 30, seed=3))


@pytest.mark.parametrize(("shape", "size"), [((0, 4), 1), ((4,), 1), ((10, 4), 0)])
def test_coreset_refuses_bad_input(shape: tuple[int, ...], size: int) -> None:
    with pytest.raises(ValueError):
        greedy_coreset(torch.zeros(shape), size)


def test_nearest_distances_match_brute_force_and_leave_one_out_excludes_the_source() -> None:
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(300, 8, generator=g)
    queries = torch.randn(2500, 8, generator=g)  # more than one chunk
    d, idx = nearest_distances(queries, bank)
    full = torch.cdist(queries.double(), bank.double())
    assert torch.allclose(d.double(), full.min(1).values, atol=1e-4)
    assert torch.equal(idx, full.argmin(1))
    # queries that are bank points: distance 0 to themselves, > 0 once their own source is excluded
    source = torch.arange(300, dtype=torch.int32)
    d_self, _ = nearest_distances(bank, bank)
    d_loo, idx_loo = nearest_distances(bank, bank, exclude=source, bank_source=source)
    assert float(d_self.max()) < 1e-2  # float32 |a|^2 - 2ab + |b|^2 cancellation
    assert float(d_loo.min()) > 0.0 and not torch.equal(idx_loo, torch.arange(300))


def test_nearest_distances_refuse_mismatched_shapes_and_an_empty_bank() -> None:
    with pytest.raises(ValueError, match="must be"):
        nearest_distances(torch.zeros(3, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="empty"):
        nearest_distances(torch.zeros(3, 4), torch.zeros(0, 4))
