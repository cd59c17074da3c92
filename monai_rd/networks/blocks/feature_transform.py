"""NORM's Feature Transform (FT): expand the student's last map, contract it back, feed it to the classifier."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FeatureTransform", "FEATURE_TRANSFORMS"]

#: ``conv_bn_residual``: the authors' default (OSVAI/NORM students: ``conv1x1 (no bias) + BN`` for each layer and
#: ``C(E(x)) + x``); ``plain``: two biased 1x1 convolutions, ``C(E(x))``, the paper's "two linear layers".
FEATURE_TRANSFORMS = ("conv_bn_residual", "plain")


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def _affine_of(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W [out, in], b [out])`` of a 1x1 convolution, an eval-mode BatchNorm or a sequence of them."""
    if isinstance(layer, nn.Sequential):
        w, b = _affine_of(layer[0])
        for sub in list(layer)[1:]:
            ws, bs = _affine_of(sub)
            w, b = ws @ w, ws @ b + bs
        return w, b
    if isinstance(layer, nn.BatchNorm2d):  # running statistics: the map the eval-mode layer computes
        scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
        return torch.diag(scale), layer.bias - layer.running_mean * scale
    w = layer.weight.reshape(layer.weight.shape[0], -1)
    return w, layer.bias if layer.bias is not None else w.new_zeros(w.shape[0])


class FeatureTransform(nn.Module):
    """``E``: ``C_S -> N * C_T`` and ``C``: ``N * C_T -> C_S`` on the student's last map (Liu et al., ICLR 2023).

    During training the classifier reads ``pool(C(E(F_S)) [+ F_S])`` and NORM's loss reads ``E(F_S)``; in eval mode
    every layer is affine (BatchNorm with its running statistics), so the whole transform is one affine map of the
    pooled feature (:meth:`affine`) that folds into the classifier for deployment.

    Args:
        student_channels: ``C_S``.
        expanded_channels: ``N * C_T``.
        kind: one of :data:`FEATURE_TRANSFORMS`.

    Shapes: ``[B, C_S, H, W]`` (or ``[B, C_S]``) -> (``[B, C_S, H, W]``, expanded ``[B, N * C_T, H, W]``).
    """

    def __init__(self, student_channels: int, expanded_channels: int, kind: str = "conv_bn_residual") -> None:
        super().__init__()
        if kind not in FEATURE_TRANSFORMS:
            raise ValueError(f"NORM's feature transform is one of {FEATURE_TRANSFORMS}, got {kind!r}.")
        self.kind = kind
        if kind == "plain":
            self.expand: nn.Module = nn.Conv2d(student_channels, expanded_channels, 1)
            self.contract: nn.Module = nn.Conv2d(expanded_channels, student_channels, 1)
        else:
            self.expand, self.contract = (
                _conv_bn(student_channels, expanded_channels),
                _conv_bn(expanded_channels, student_channels),
            )
        self.residual = kind == "conv_bn_residual"

    def expanded(self, x: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        """``E(x)``. ``update_stats=False``: a training-mode BatchNorm normalises with the batch's statistics without
        moving its running ones (NORM's loss reads ``E`` a second time in the step; the classifier's pass owns them)."""
        if update_stats or not isinstance(self.expand, nn.Sequential) or not self.training:
            return self.expand(x)
        conv, bn = self.expand
        return F.batch_norm(conv(x), None, None, bn.weight, bn.bias, training=True, eps=bn.eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vector = x.dim() == 2
        x4 = x[:, :, None, None] if vector else x
        e = self.expand(x4)
        out = self.contract(e) + (x4 if self.residual else 0)
        return (out[:, :, 0, 0], e[:, :, 0, 0]) if vector else (out, e)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [C_S, C_S], b [C_S])`` with ``transform(x) = W x + b`` per position, in eval mode."""
        we, be = _affine_of(self.expand)
        wc, bc = _affine_of(self.contract)
        w, b = wc @ we, wc @ be + bc
        if self.residual:
            w = w + torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
        return w, b

    @torch.no_grad()
    def reset_to_identity(self) -> None:
        """Make the transform the identity map (a loaded, already folded head): the residual form zeroes ``C``'s
        output; the plain form embeds then keeps the first ``C_S`` channels."""
        if self.residual:
            bn = self.contract[1]
            bn.weight.zero_()
            bn.bias.zero_()
            return
        width = self.contract.weight.shape[0]
        for layer in (self.expand, self.contract):
            w = layer.weight.view(layer.weight.shape[0], -1)
            if min(w.shape) < width:
                raise ValueError(f"{layer} is narrower than the student's {width} features: cannot be the identity.")
            w.zero_()
            w[:width, :width] = torch.eye(width)
            layer.bias.zero_()
