"""Parameter-efficient adaptation of a teacher: LoRA (through the ``peft`` library) and visual prompt tuning."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.nets.method_nets import TunedTeacher

__all__ = ["lora_teacher", "find_vit", "VisualPrompts", "vpt_teacher", "LORA_TARGET_SUFFIXES"]

#: Linear layers that receive LoRA by default: the attention projections of timm / HF / open_clip ViTs.
LORA_TARGET_SUFFIXES = ("qkv", "query", "key", "value", "q_proj", "k_proj", "v_proj")


def lora_teacher(
    teacher: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
) -> TunedTeacher:
    """A copy of ``teacher`` with LoRA adapters (``peft.inject_adapter_in_model``); only the adapters train.

    Args:
        rank, alpha, dropout: LoRA ``r``, ``lora_alpha``, ``lora_dropout``.
        target_modules: module-name suffixes to adapt (``nn.Linear`` or ``nn.Conv2d``); default: the attention
            projections named in :data:`LORA_TARGET_SUFFIXES`. A teacher with none of them is refused.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:  # pragma: no cover - peft is an install requirement
        raise ImportError("lora_kd needs the 'peft' package: pip install 'monai_rd[peft]'.") from e
    tuned = TunedTeacher(teacher, train_mode=False)
    if target_modules is None:
        target_modules = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in tuned.named_modules()
                if isinstance(m, nn.Linear) and n.endswith(LORA_TARGET_SUFFIXES)
            }
        )
        if not target_modules:
            raise ValueError(
                f"Teacher {tuned.name!r} has no attention projection layers ({', '.join(LORA_TARGET_SUFFIXES)}); "
                "give lora_target_modules (names of its nn.Linear / nn.Conv2d layers) in method_options."
            )
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
    inject_adapter_in_model(config, tuned.teacher.backbone)
    for name, p in tuned.named_parameters():
        p.requires_grad_("lora_" in name)
    if not any(p.requires_grad for p in tuned.parameters()):
        raise ValueError(f"LoRA matched no layer of teacher {tuned.name!r} with target_modules={list(target_modules)}.")
    return tuned


def find_vit(module: nn.Module) -> nn.Module:
    """The timm ``VisionTransformer`` inside a teacher (a module with ``patch_embed``, ``blocks`` and ``norm_pre``)."""
    for m in module.modules():
        if all(hasattr(m, a) for a in ("patch_embed", "blocks", "norm_pre", "num_prefix_tokens")):
            return m
    raise ValueError(
        "vpt_kd needs a timm Vision Transformer teacher (e.g. 'timm:vit_tiny_patch16_224'); "
        f"{type(module).__name__} has none."
    )


class VisualPrompts(nn.Module):
    """VPT-shallow (Jia et al., ECCV 2022): ``num_prompts`` learnable tokens ``[1, P, D]`` inserted after the prefix
    (CLS) tokens of a ViT, right after the position embedding (output of ``norm_pre``), before the first block.

    Tokens ``[B, 1 + N, D]`` -> ``[B, 1 + P + N, D]``. Prompts are initialised uniformly in
    ``+-sqrt(6 / (P + D))`` (Xavier, as the VPT code).
    """

    def __init__(self, num_prompts: int, dim: int, num_prefix_tokens: int) -> None:
        super().__init__()
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {num_prompts}.")
        bound = (6.0 / (num_prompts + dim)) ** 0.5
        self.prompts = nn.Parameter(torch.empty(1, num_prompts, dim).uniform_(-bound, bound))
        self.num_prefix_tokens = num_prefix_tokens

    def insert(self, tokens: torch.Tensor) -> torch.Tensor:
        k = self.num_prefix_tokens
        prompts = self.prompts.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return torch.cat([tokens[:, :k], prompts, tokens[:, k:]], dim=1)

    def forward(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:  # forward hook
        return self.insert(output)


def vpt_teacher(teacher: nn.Module, num_prompts: int = 10) -> TunedTeacher:
    """A copy of a ViT ``teacher`` with VPT-shallow prompts; only the prompts train (the head is added by the caller)."""
    tuned = TunedTeacher(teacher, train_mode=False)
    vit = find_vit(tuned.teacher)
    for p in tuned.parameters():
        p.requires_grad_(False)
    tuned.prompts = VisualPrompts(num_prompts, int(vit.embed_dim), int(vit.num_prefix_tokens))
    vit.norm_pre.register_forward_hook(tuned.prompts)
    return tuned
