"""Teacher-output caching: the frozen teacher's outputs per training item, computed once and reused.

The teacher never changes during distillation, so after the first epoch every forward pass it
makes repeats one already made. :class:`TeacherCache` keeps each item's outputs (its valid
tokens' hidden states, and per-layer states when a loss needs them, in half precision; its
pooled embedding in float32) the first time the item is in a batch, and later batches are
assembled from memory instead of running the teacher. Only the items a batch has not seen yet
go through the teacher, as a sub-batch.

Memory: about ``tokens x hidden x 2`` bytes per item (x (layers + 2) with ``layer_mse``): the
38,532 Brown training sentences at MiniLM's width take about 0.85 GB (``experiments/teacher_cache.py``).
"""
from __future__ import annotations

from typing import Callable

import torch


class TeacherCache:
    """Per-item teacher outputs, keyed by the item's index in the training data.

    Args:
        dtype: storage precision of the token states (float16: half the memory of float32; the
            relative rounding, 2**-11, is below that of the bf16 autocast the CPU recipes train in).

    Example:
        >>> import torch
        >>> cache = TeacherCache()
        >>> def teacher(rows):  # stands in for the teacher on the items at those batch rows
        ...     return {"hidden": torch.ones(len(rows), 3, 4), "mask": torch.ones(len(rows), 3),
        ...             "pooled": torch.ones(len(rows), 4)}
        >>> out = cache.lookup([7, 9], torch.ones(2, 3), teacher)  # both new: the teacher runs
        >>> out = cache.lookup([9, 7], torch.ones(2, 3), teacher)  # both known: from memory
        >>> (cache.hits, cache.misses, len(cache))
        (2, 2, 2)
    """

    def __init__(self, dtype: torch.dtype = torch.float16):
        self.dtype = dtype
        self.store: dict[int, dict[str, object]] = {}
        self.hits = self.misses = 0
        self.key: tuple | None = None

    def bind(self, key: tuple) -> None:
        """Tie the cache to what its outputs depend on (teacher, data, sequence length, ...): the first
        ``key`` is kept, and a different one later is refused, so a cache shared between calls never
        serves outputs of another teacher or text."""
        if self.key is None:
            self.key = key
        elif key != self.key:
            raise ValueError(f"this TeacherCache holds outputs for {self.key}, not {key}: "
                             "use a new TeacherCache for another teacher, data or config")

    def __len__(self) -> int:
        return len(self.store)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached tensors."""
        def size(v) -> int:
            return sum(size(x) for x in v) if isinstance(v, tuple) else v.numel() * v.element_size()
        return sum(size(v) for item in self.store.values() for v in item.values())

    def lookup(self, idx: list[int], mask: torch.Tensor | None,
               compute: Callable[[list[int]], dict[str, torch.Tensor]],
               device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The teacher outputs (``hidden`` (B, T, H), ``mask`` (B, T), ``pooled`` (B, H), optionally
        ``layers``) of the batch whose items have data indices ``idx`` and attention ``mask`` (B, T)
        (None: no padding, as for images).

        ``compute(rows)`` runs the teacher on the batch rows ``rows`` (positions in ``idx``) and returns
        their outputs; it is called once, for the rows not cached yet (not at all when every row is).
        """
        if mask is not None and len(idx) != mask.shape[0]:
            raise ValueError(f"{len(idx)} item indices for a batch of {mask.shape[0]} rows")
        missing = [r for r, i in enumerate(idx) if i not in self.store]
        self.misses += len(missing)
        self.hits += len(idx) - len(missing)
        if missing:
            fresh = compute(missing)
            fmask = fresh["mask"].bool()  # (M, T'): the sub-batch may be padded to another length
            for j, r in enumerate(missing):
                self.store[idx[r]] = self._item(fresh, j, fmask[j])
            if len(missing) == len(idx):
                return fresh  # the whole batch was new: the teacher's own outputs, nothing to assemble
        if mask is None:  # no attention mask (images): every row has all its tokens, as many as a cached item
            mask = torch.ones(len(idx), self.store[idx[0]]["hidden"].shape[0], device=device)
        return self._assemble(idx, mask)

    def _item(self, out: dict[str, torch.Tensor], j: int, valid: torch.Tensor) -> dict[str, object]:
        item: dict[str, object] = {"hidden": out["hidden"][j][valid].to(self.dtype).cpu(),  # (L, H)
                                   "pooled": out["pooled"][j].float().cpu()}  # (H,)
        if "layers" in out:
            item["layers"] = tuple(h[j][valid].to(self.dtype).cpu() for h in out["layers"])
        return item

    def _assemble(self, idx: list[int], mask: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.store[idx[0]]
        b, t = mask.shape
        h = first["hidden"].shape[-1]
        dev = mask.device
        valid = mask.bool()  # (B, T)
        n_valid = valid.sum(1).tolist()

        def tokens(get) -> torch.Tensor:  # (B, T, H), zeros at padding
            out = torch.zeros(b, t, h, device=dev)
            for r, i in enumerate(idx):
                v = get(self.store[i])
                if v.shape[0] != n_valid[r]:
                    raise RuntimeError(f"item {i}: {v.shape[0]} tokens cached, the batch has {n_valid[r]}; "
                                       "cache only data whose batches tokenize alike")
                out[r, valid[r]] = v.to(dev, torch.float32)
            return out

        res = {"hidden": tokens(lambda it: it["hidden"]), "mask": mask.float(),
               "pooled": torch.stack([self.store[i]["pooled"] for i in idx]).to(dev)}
        if "layers" in first:
            res["layers"] = tuple(tokens(lambda it, k=k: it["layers"][k]) for k in range(len(first["layers"])))
        return res
