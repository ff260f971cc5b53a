"""Embeddings of support images kept between adaptations, keyed by the images' content.

With a frozen embedding, adapting is cheap (a few dozen steps on a small head) and embedding the support set
is what costs: on a 2-core CPU, 30 labelled parts under two views take seconds through EfficientNet-Lite.
Labels arrive one at a time, so the app embeds each example when it is labelled (``learner.warm``) and *Adapt*
only fits the head. Keys are a digest of the prepared image tensor and the view, so a changed image (or an
image prepared differently) is never served a stale embedding; the cache is bounded (least recently used
entries go first) and thread-safe (labels are embedded in a worker while another may adapt).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch


def tensor_digest(x: torch.Tensor) -> bytes:
    """A 16-byte digest of one tensor's shape, dtype and values."""
    data = x.detach().to("cpu").contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(data.shape)}|{data.dtype}".encode())
    if data.numel():
        h.update(data.view(torch.uint8).numpy())  # hashed in place: no 600 KB copy per 224 px image
    return h.digest()


class EmbeddingCache:
    """Bounded least-recently-used map ``(view, image digest) -> embedding (D,)`` on the CPU.

    Parameters
    ----------
    capacity
        Most embeddings kept (2048 of the shipped model's 12,974 floats, covariance groups included, are
        about 106 MB: 512 parts under its four support views).
    """

    def __init__(self, capacity: int = 2048) -> None:
        if int(capacity) < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: OrderedDict[tuple[str, bytes], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getstate__(self) -> dict[str, int]:
        return {"capacity": self.capacity}  # a copy (pickled, deep-copied) starts empty

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["capacity"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget every embedding (the embedding function changed)."""
        with self._lock:
            self._items.clear()

    def embed(
        self,
        view: str,
        x: torch.Tensor,
        compute: Callable[[torch.Tensor], torch.Tensor],
        digests: Sequence[bytes] | None = None,
    ) -> torch.Tensor:
        """Embeddings ``(B, D)`` of images ``x`` ``(B, ...)`` under ``view``; only the unseen ones are computed.

        ``compute`` maps a batch of images to ``(b, D)``; ``digests`` (one per image of ``x``, from
        :func:`tensor_digest` of the *untransformed* image) saves hashing the same images once per view.
        """
        keys = [(view, d) for d in (digests if digests is not None else [tensor_digest(i) for i in x])]
        if len(keys) != len(x):
            raise ValueError(f"{len(keys)} digests for {len(x)} images")
        with self._lock:
            found = {i: self._items[k] for i, k in enumerate(keys) if k in self._items}
            for i in found:
                self._items.move_to_end(keys[i])
        missing = [i for i in range(len(keys)) if i not in found]
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            new = compute(x[missing]).detach()
            with self._lock:
                for row, i in enumerate(missing):
                    found[i] = new[row]
                    self._items[keys[i]] = new[row].to("cpu").clone()
                    self._items.move_to_end(keys[i])
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        device = next(iter(found.values())).device if not missing else new.device
        return torch.stack([found[i].to(device) for i in range(len(keys))]) if keys else x.new_zeros(0, 0)
