"""Parameter-efficient adaptation of a teacher: LoRA (through the ``peft`` library) and visual prompt tuning."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

import torch.nn.functional as F

from monai_rd.networks.layer_taps import probe_forward
from monai_rd.networks.nets.method_nets import TunedTeacher

__all__ = [
    "lora_teacher",
    "used_layers",
    "default_lora_targets",
    "find_vit",
    "VisualPrompts",
    "PromptedSAMAttention",
    "vpt_teacher",
    "LORA_TARGET_SUFFIXES",
]

#: Linear layers that receive LoRA by default: the attention projections of timm / HF / open_clip ViTs.
LORA_TARGET_SUFFIXES = ("qkv", "query", "key", "value", "q_proj", "k_proj", "v_proj")


def used_layers(tuned: TunedTeacher, image_size: int = 64) -> dict[str, nn.Module]:
    """``nn.Linear`` / ``nn.Conv2d`` layers of the teacher's backbone that run as modules in its forward pass.

    One eval-mode probe (:func:`probe_forward`) of a zero image: layers whose weights are read directly by a
    functional call (PMC-CLIP's ``attnpool`` projections, through ``F.multi_head_attention_forward``) or that the
    feature path skips (a classifier, SAM's neck) are absent, so LoRA never lands where no gradient can reach.
    Names are relative to ``tuned.teacher.backbone`` (what peft adapts).
    """
    backbone = tuned.teacher.backbone
    ran: dict[str, nn.Module] = {}

    def keep(name: str, module: nn.Module):
        def hook(mod, inputs, output) -> None:
            ran.setdefault(name, module)

        return hook

    handles = [m.register_forward_hook(keep(n, m)) for n, m in backbone.named_modules()
               if isinstance(m, (nn.Linear, nn.Conv2d))]  # fmt: skip
    probe_forward(tuned, image_size, handles)
    return ran


def default_lora_targets(tuned: TunedTeacher, image_size: int = 64) -> list[str]:
    """Full names (in the backbone) of the layers LoRA adapts by default, among the :func:`used_layers`:

    * a ViT (any used ``nn.Linear`` named like :data:`LORA_TARGET_SUFFIXES`: timm ``qkv`` incl. SAM / LVM-Med,
      HF ``query``/``key``/``value``): those attention projections, as LoRA (Hu et al.) and MeLo do;
    * a CNN (PMC-CLIP's ModifiedResNet, RadImageNet/LVM-Med ResNet-50 and DenseNet-121, torchvision): every used
      ``nn.Conv2d`` with ``groups == 1`` (peft's Conv2d LoRA: ``A`` a conv of the layer's kernel to ``r``
      channels, ``B`` a 1x1 conv back); depthwise convolutions are left alone.
    """
    used = used_layers(tuned, image_size)
    attention = [n for n, m in used.items() if isinstance(m, nn.Linear) and n.endswith(LORA_TARGET_SUFFIXES)]
    if attention:
        return sorted(attention)
    convs = [n for n, m in used.items() if isinstance(m, nn.Conv2d) and m.groups == 1]
    if not convs:
        raise ValueError(
            f"Teacher {tuned.name!r} runs no attention projection ({', '.join(LORA_TARGET_SUFFIXES)}) and no "
            "convolution as a module; give lora_target_modules (names of its nn.Linear / nn.Conv2d layers)."
        )
    return sorted(convs)


def lora_teacher(
    teacher: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
    image_size: int = 64,
) -> TunedTeacher:
    """A copy of ``teacher`` with LoRA adapters (``peft.inject_adapter_in_model``); only the adapters train.

    Args:
        rank, alpha, dropout: LoRA ``r``, ``lora_alpha``, ``lora_dropout``.
        target_modules: module names or name suffixes to adapt (``nn.Linear`` or ``nn.Conv2d``); default:
            :func:`default_lora_targets` (attention projections of a ViT, convolutions of a CNN, used ones only).
        image_size: side of the probe image that finds the used layers.

    ``lora_B`` starts at zero (peft's default), so the adapted teacher starts as the teacher and, in the first
    step, only ``lora_B`` receives a gradient; ``lora_A`` does from the second step on.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:  # pragma: no cover - peft is an install requirement
        raise ImportError("lora_kd needs the 'peft' package: pip install 'monai_rd[peft]'.") from e
    tuned = TunedTeacher(teacher, train_mode=False)
    if target_modules is None:
        target_modules = default_lora_targets(tuned, image_size)
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
        "vpt_kd needs a timm Vision Transformer teacher (e.g. 'timm:vit_tiny_patch16_224', 'biomedclip_vit_b') or "
        "a SAM ViT ('lvmmed_vit_b'); "
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


class PromptedSAMAttention(nn.Module):
    """VPT-deep for a global-attention block of a SAM ViT (LVM-Med's encoder), wrapping timm's SAM ``Attention``.

    SAM has no class token and most of its blocks attend inside 14x14 windows with relative position biases, so
    VPT's prompts cannot simply be concatenated to the token sequence. Here ``P`` learnable prompt tokens
    ``[1, P, C]`` join the keys and values of a global-attention block (blocks 2, 5, 8, 11 of ViT-B): every image
    token attends to ``[prompts; image tokens]``; prompts carry no relative position (bias 0) and, as in
    VPT-deep, each block has its own prompts and their outputs are dropped. Prompts live after ``norm1``.

    Shapes: ``[B, H, W, C] -> [B, H, W, C]``.
    """

    def __init__(self, attn: nn.Module, num_prompts: int, dim: int) -> None:
        super().__init__()
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {num_prompts}.")
        if getattr(attn, "rope", None) is not None:
            raise ValueError("PromptedSAMAttention supports SAM's relative-position attention, not RoPE.")
        self.attn = attn
        bound = (6.0 / (num_prompts + dim)) ** 0.5
        self.prompts = nn.Parameter(torch.empty(1, num_prompts, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from timm.models.vision_transformer_sam import get_decomposed_rel_pos_bias

        a, p = self.attn, self.prompts.shape[1]
        b, h, w, _ = x.shape
        n = h * w
        tokens = torch.cat([self.prompts.expand(b, -1, -1).to(x.dtype), x.reshape(b, n, -1)], dim=1)
        qkv = a.qkv(tokens).view(b, p + n, 3, a.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * a.num_heads, p + n, -1).unbind(0)
        q, k = a.q_norm(q[:, p:]), a.k_norm(k)  # queries: image tokens only (prompt outputs are dropped)
        bias = None
        if a.use_rel_pos:
            bias = F.pad(get_decomposed_rel_pos_bias(q, a.rel_pos_h, a.rel_pos_w, (h, w), (h, w)), (p, 0))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=a.attn_drop.p if self.training else 0.0)
        out = out.view(b, a.num_heads, n, -1).transpose(1, 2).reshape(b, n, -1)
        return a.proj_drop(a.proj(out)).view(b, h, w, -1)


def _sam_vit(module: nn.Module) -> nn.Module | None:
    return next((m for m in module.modules() if type(m).__name__ == "VisionTransformerSAM"), None)


def vpt_teacher(teacher: nn.Module, num_prompts: int = 10) -> TunedTeacher:
    """A copy of a ViT ``teacher`` with visual prompts; only the prompts train (the head is added by the caller).

    A timm ``VisionTransformer`` (BiomedCLIP, DeiT ...) gets VPT-shallow (:class:`VisualPrompts` after the CLS
    token); a SAM ViT (LVM-Med ``lvmmed_vit_b``) gets :class:`PromptedSAMAttention` in each global-attention
    block (``num_prompts`` per block), since its windowed blocks have no place for extra tokens.
    """
    tuned = TunedTeacher(teacher, train_mode=False)
    for p in tuned.parameters():
        p.requires_grad_(False)
    sam = _sam_vit(tuned.teacher)
    if sam is not None:
        blocks = [blk for blk in sam.blocks if getattr(blk, "window_size", 0) == 0]
        if not blocks:
            raise ValueError("This SAM ViT has no global-attention block to prompt.")
        for blk in blocks:
            blk.attn = PromptedSAMAttention(blk.attn, num_prompts, int(blk.attn.qkv.in_features))
        return tuned
    vit = find_vit(tuned.teacher)
    tuned.prompts = VisualPrompts(num_prompts, int(vit.embed_dim), int(vit.num_prefix_tokens))
    vit.norm_pre.register_forward_hook(tuned.prompts)
    return tuned
