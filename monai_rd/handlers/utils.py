"""Output transforms that turn RD engine outputs into what loggers and Ignite metrics expect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.utils import CommonKeys as Keys

from monai_rd.utils import RDKeys

__all__ = ["rd_loss_terms", "probs_and_class_indices", "weighted_loss", "check_loss_terms"]


def weighted_loss(engine, loss_function=None):
    """The loss whose ``weights`` a handler sets: ``loss_function``, or the engine's own when it is None."""
    return loss_function if loss_function is not None else engine.loss_function


def check_loss_terms(owner: str, loss, terms) -> None:
    """Raise a ``KeyError`` naming ``owner`` when ``terms`` holds a name that ``loss.weights`` does not have."""
    unknown = sorted(set(terms) - set(loss.weights))
    if unknown:
        raise KeyError(f"{owner}: unknown loss terms {unknown}; the loss has {sorted(loss.weights)}.")


def _first(output: Mapping | Sequence[Mapping]) -> Mapping:
    # MONAI decollates the batch output into a list of per-item dicts, scalars replicated in each
    return output[0] if isinstance(output, (list, tuple)) else output


def rd_loss_terms(output: Mapping | Sequence[Mapping]) -> dict[str, float]:
    """``{"loss", "loss_<term>", "weight_<term>", "cka"}`` of one RD training iteration, as floats.

    Use it as ``MLFlowHandler(output_transform=...)`` / ``StatsHandler(output_transform=...)``.
    """
    first = _first(output)
    keep = {
        k: float(v)
        for k, v in first.items()
        if k in (Keys.LOSS, RDKeys.CKA) or k.startswith((RDKeys.TERM_PREFIX, RDKeys.WEIGHT_PREFIX))
    }
    if Keys.LOSS not in keep:
        raise KeyError(f"No '{Keys.LOSS}' in the engine output (keys: {sorted(first)}); is this an RDTrainer?")
    return keep


def probs_and_class_indices(output: Mapping | Sequence[Mapping]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pred [B, C], label [B])`` for Ignite classification metrics (Accuracy, Fbeta).

    ``pred`` is stacked as is (logits or probabilities); ``label`` is turned into class indices, from
    either indices (``[]`` or ``[1]`` per item) or one-hot vectors (``[C]`` per item).
    """
    items = output if isinstance(output, (list, tuple)) else [output]
    if isinstance(output, Mapping):
        pred, label = output[Keys.PRED], output[Keys.LABEL]
    else:
        pred = torch.stack([torch.as_tensor(i[Keys.PRED]) for i in items])
        label = torch.stack([torch.as_tensor(i[Keys.LABEL]).reshape(-1) for i in items])
    label = label.reshape(pred.shape[0], -1)
    if label.shape[1] == pred.shape[1] and pred.shape[1] > 1:
        label = label.argmax(dim=1)
    elif label.shape[1] == 1:
        label = label[:, 0]
    else:
        raise ValueError(f"Labels of shape {tuple(label.shape)} do not fit predictions {tuple(pred.shape)}.")
    return pred.float(), label.long()
