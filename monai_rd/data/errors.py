"""The one error type of a bad input: :class:`BadInputError` (a ``ValueError``), raised by the one validator
(:mod:`monai_rd.data.checks`), the indexers and the readers (their ``ImageReadError``, ``DicomReadError``,
``NiftiReadError`` and ``UnsupportedFileError`` are subclasses), so ``except BadInputError`` catches every one.

A module of its own, importing nothing, so that the readers below :mod:`monai_rd.data.checks` can subclass it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["BadInputError", "SplitTooSmallError"]


class BadInputError(ValueError):
    """Unusable inputs; the message lists each file/key and the reason, ``errors`` maps each bad file to it."""

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = dict(errors or {})


class SplitTooSmallError(BadInputError):
    """A split is empty because the dataset has too few images or groups per class for the split protocol; the
    message names how many it has and needs, and the options (``split_protocol``, ``val_fraction``,
    ``test_fraction``) that change it."""
