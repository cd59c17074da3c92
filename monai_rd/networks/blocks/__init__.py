"""Blocks: the reprogrammer ``g`` (residual blocks) and parameter-efficient teacher adapters (LoRA, prompts)."""

from monai_rd.networks.blocks.feature_transform import FEATURE_TRANSFORMS, FeatureTransform
from monai_rd.networks.blocks.reprogrammer import (
    AttentionPool,
    Reprogrammer,
    ResidualConvBlock,
    ResidualMLPBlock,
    bottleneck_width,
    budget_width,
)
