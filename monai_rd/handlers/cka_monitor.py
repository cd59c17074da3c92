"""Validation CKA between the reprogrammed teacher features and the student features."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.utils import IgniteInfo, evenly_divisible_all_gather, min_version, optional_import

from monai_rd.losses.cka import linear_cka

Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric", as_type="base")

__all__ = ["CKAMonitor"]


def _stack(x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(x)) if isinstance(x, (list, tuple)) else x


class CKAMonitor(Metric):
    """Linear CKA over a whole validation epoch between ``f_T = g(T(x))`` and ``f_S = S(x)``.

    An Ignite metric: attach it to an evaluator as an additional metric (``"val_cka": CKAMonitor()``) and
    it appears in ``engine.state.metrics`` each epoch, so StatsHandler and MLFlowHandler log it. Features
    are kept on the CPU in float32 until the epoch ends (``n x d_S`` values).

    Args:
        output_transform: maps the (decollated) engine output to ``(f_T, f_S)``; the default reads the
            ``f_T``/``f_S`` entries that :class:`monai_rd.engines.RDEvaluator` writes.
    """

    def __init__(self, output_transform: Callable | None = None, device: str | torch.device = "cpu") -> None:
        if output_transform is None:
            from monai.handlers import from_engine

            output_transform = from_engine(["f_T", "f_S"])
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._f_t: list[torch.Tensor] = []
        self._f_s: list[torch.Tensor] = []

    def update(self, output: tuple) -> None:
        f_t, f_s = (_stack(o).detach().float().cpu() for o in output)
        self._f_t.append(f_t.reshape(f_t.shape[0], -1))
        self._f_s.append(f_s.reshape(f_s.shape[0], -1))

    def compute(self) -> float:
        if not self._f_t:
            raise RuntimeError("CKAMonitor saw no features: is it attached to an RDEvaluator?")
        # under DDP every rank holds its shard of the validation set: CKA is over the whole set
        f_t = evenly_divisible_all_gather(torch.cat(self._f_t), concat=True)
        f_s = evenly_divisible_all_gather(torch.cat(self._f_s), concat=True)
        return float(linear_cka(f_t, f_s))
