"""The support-embedding cache: content keys, least-recently-used bound, one computation per unseen image."""

from __future__ import annotations

import pytest
import torch

from core.meta.embedding_cache import EmbeddingCache, tensor_digest


def _counting(calls: list[int]):  # type: ignore[no-untyped-def]
    def compute(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        return batch.flatten(1).sum(1, keepdim=True).repeat(1, 2)

    return compute


def test_only_unseen_images_are_computed_and_rows_keep_their_order() -> None:
    cache = EmbeddingCache(capacity=10)
    calls: list[int] = []
    x = torch.arange(12, dtype=torch.float32).view(4, 3)
    first = cache.embed("identity", x[:2], _counting(calls))
    out = cache.embed("identity", x[[3, 0, 2, 1]], _counting(calls))
    assert calls == [2, 2]  # the second call computed images 3 and 2 only
    assert torch.equal(out[:, 0], x[[3, 0, 2, 1]].sum(1))
    assert torch.equal(out[1], first[0])
    assert (cache.hits, cache.misses) == (2, 4)
    cache.embed("hflip", x[:1], _counting(calls))  # another view is another entry
    assert calls[-1] == 1


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = EmbeddingCache(capacity=2)
    calls: list[int] = []
    x = torch.eye(3)
    cache.embed("v", x[0:1], _counting(calls))
    cache.embed("v", x[1:2], _counting(calls))
    cache.embed("v", x[0:1], _counting(calls))  # 0 used again: 1 is now the oldest
    cache.embed("v", x[2:3], _counting(calls))
    assert len(cache) == 2
    cache.embed("v", x[0:1], _counting(calls))
    cache.embed("v", x[1:2], _counting(calls))
    assert calls == [1, 1, 1, 1]  # 0 was still there, 1 had to be computed again


def test_digest_tells_apart_values_shapes_and_dtypes() -> None:
    a = torch.zeros(2, 3)
    assert tensor_digest(a) == tensor_digest(a.clone())
    assert tensor_digest(a) != tensor_digest(a.view(3, 2))
    assert tensor_digest(a) != tensor_digest(a.double())
    b = a.clone()
    b[1, 2] = 1e-7
    assert tensor_digest(a) != tensor_digest(b)


def test_bad_capacity_and_mismatched_digests_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        EmbeddingCache(0)
    with pytest.raises(ValueError, match="digests"):
        EmbeddingCache().embed("v", torch.zeros(2, 1), lambda b: b, [b"x"])


def test_a_copy_starts_empty_and_works() -> None:
    import copy
    import pickle

    cache = EmbeddingCache(capacity=5)
    cache.embed("v", torch.eye(2), lambda b: b)
    for clone in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert len(clone) == 0 and clone.capacity == 5
        assert torch.equal(clone.embed("v", torch.eye(2), lambda b: b), torch.eye(2))
