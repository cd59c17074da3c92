"""Put the real error on the last line of a failed ``python -m monai.bundle run``.

MONAI wraps every exception raised while it evaluates a config item in ``RuntimeError("Failed to evaluate
...")`` (or ``"Failed to instantiate ..."``), so the useful line (``ConfigError: unknown bundle id(s) ...``,
``FileNotFoundError: BUSI folder ...``) sits in the middle of a long traceback whose last line is the wrapper.
:func:`install_error_report` installs a ``sys.excepthook`` that prints the full traceback as usual and then
repeats the first exception of the chain that is not such a wrapper, so the last line is the project's own
error (class and message).
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType

__all__ = ["root_error", "report_error_last", "install_error_report"]

#: how MONAI's config machinery words the exceptions it raises ``from`` the real one
_WRAPPER_PREFIXES = ("Failed to evaluate ", "Failed to instantiate ")


def _is_wrapper(exc: BaseException) -> bool:
    return type(exc) is RuntimeError and str(exc).startswith(_WRAPPER_PREFIXES)


def root_error(exc: BaseException | None) -> BaseException | None:
    """The outermost exception of ``exc``'s cause chain that is not one of MONAI's config wrappers."""
    seen = set()
    while exc is not None and _is_wrapper(exc) and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return exc


def report_error_last(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook``: the usual full traceback, then the real error again as the final line(s)."""
    sys.__excepthook__(exc_type, exc, tb)
    root = root_error(exc)
    if root is not None and root is not exc:
        sys.stderr.write("\nThe error that stopped the bundle:\n")
        sys.stderr.write("".join(traceback.format_exception_only(type(root), root)))
        sys.stderr.flush()


def install_error_report() -> None:
    """Install :func:`report_error_last` as ``sys.excepthook`` (idempotent; keeps a user's own hook)."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = report_error_last
