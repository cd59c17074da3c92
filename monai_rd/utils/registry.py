"""Name -> builder registries for teachers and students (timm-style: one factory, no if-chains)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing torch here would slow down `monai-rd --help`
    import torch.nn as nn

__all__ = ["Registry"]


class Registry:
    """A table of named builders, plus prefix families such as ``torchvision:<arch>``.

    A name is resolved in this order: an exact registered name, then ``<prefix>:<rest>`` where
    ``<prefix>`` is a registered family whose builder receives ``<rest>`` as its first argument.

    Args:
        kind: what is being built ("teacher", "student"), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., nn.Module]] = {}
        self._families: dict[str, Callable[..., nn.Module]] = {}

    def register(self, name: str, builder: Callable[..., nn.Module] | None = None):
        """Register ``builder`` under ``name``; usable as a decorator."""

        def _add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            if name in self._builders:
                raise KeyError(f"{self.kind} {name!r} is already registered.")
            self._builders[name] = fn
            return fn

        return _add if builder is None else _add(builder)

    def register_family(self, prefix: str, builder: Callable[..., nn.Module] | None = None):
        """Register a builder for every name ``<prefix>:<arch>``; it is called as ``builder(arch, **kwargs)``."""

        def _add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            if prefix in self._families:
                raise KeyError(f"{self.kind} family {prefix!r} is already registered.")
            self._families[prefix] = fn
            return fn

        return _add if builder is None else _add(builder)

    def names(self) -> list[str]:
        """Registered names and families (``family:<arch>``), sorted."""
        return sorted(self._builders) + sorted(f"{p}:<arch>" for p in self._families)

    def __contains__(self, name: str) -> bool:
        return name in self._builders or name.partition(":")[0] in self._families and ":" in name

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        """Build the module registered as ``name`` with ``kwargs``."""
        if name in self._builders:
            return self._builders[name](**kwargs)
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._families:
            return self._families[prefix](rest, **kwargs)
        raise KeyError(f"Unknown {self.kind} {name!r}. Available: {', '.join(self.names())}.")
