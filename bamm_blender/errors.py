"""Errors the add-on shows to the user as a report (never a traceback), and the one decorator every operator
method uses to report them.

Kinds: ``BammInputError`` is the user's mistake (bad prompt, range, armature, file, or a request the worker
refused as bad input) and says how to fix it; ``BammCancelled`` is a warning; any other ``BammError`` is a
failure of BAMM itself (the worker crashed, the model failed); any other exception is an internal error
(its traceback goes to the system console, the report says so).
"""

from __future__ import annotations

import functools
import traceback


class BammError(Exception):
    """A problem the user can fix; the message says what and how."""


class BammInputError(BammError):
    """Bad input: empty prompt, no armature, bad frame range, missing weights."""


class BammBackendError(BammError):
    """The generation backend failed: worker crashed, worker Python without torch, model error."""


class BammCancelled(BammError):
    """The user cancelled a running generation."""


def describe(error: BaseException) -> tuple[str, str]:
    """``(kind, one-line message)`` of an error: kind "input", "cancelled", "failure" or "internal"."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, BammInputError):
        return "input", text
    if isinstance(error, BammCancelled):
        return "cancelled", text
    if isinstance(error, BammError):
        return "failure", f"BAMM failed: {text}"
    return "internal", f"Internal error, please report it: {type(error).__name__}: {text} (traceback in the console)"


def report_error(operator, context, error: BaseException) -> set:
    """Report ``error`` on ``operator`` as one line, keep it for the panel, return ``{"CANCELLED"}``."""
    kind, message = describe(error)
    if kind == "internal":
        traceback.print_exception(error)
    wm = getattr(context, "window_manager", None)
    if wm is not None and hasattr(wm, "bamm_error"):  # shown in the panel until the next operation or Dismiss
        wm.bamm_error, wm.bamm_error_kind = ("", "") if kind == "cancelled" else (message, kind)
    operator.report({"WARNING"} if kind == "cancelled" else {"ERROR"}, message)
    return {"CANCELLED"}


def reports_errors(method):
    """Decorate an operator's ``execute`` / ``invoke`` / ``modal``: any error it raises is reported by
    ``report_error`` (one line, never a traceback in the UI) and the operator ends CANCELLED. ``execute`` and
    ``invoke`` clear the previous operation's error first."""

    def run(self, context, *args):
        wm = getattr(context, "window_manager", None)
        if method.__name__ in ("execute", "invoke") and wm is not None and hasattr(wm, "bamm_error"):
            wm.bamm_error, wm.bamm_error_kind = "", ""
        try:
            return method(self, context, *args)
        except Exception as error:  # noqa: BLE001 - every error becomes a report
            return report_error(self, context, error)

    # Blender checks the argument count of an operator's methods: (self, context) or (self, context, event)
    if method.__code__.co_argcount == 3:
        def wrapper(self, context, event):
            return run(self, context, event)
    else:
        def wrapper(self, context):
            return run(self, context)
    return functools.wraps(method)(wrapper)
