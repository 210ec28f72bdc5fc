"""The worker's line checks (see ``worker.py`` for the protocol): every line a client sends is checked here
before anything acts on it, so no line can end the worker or write outside its folder.

`parse_line(text)` -> a message dict with a checked ``op`` and ``id``, or `ProtocolError` (answered as an input
error with ``"id": null``, or the id when it was readable). `error_kind(exc)`: "input" for the user's mistakes
(`limits.InputError`, missing or unreadable files the user named), "failure" for the rest.
"""

from __future__ import annotations

import json
import re

from ..contract.limits import InputError
from ..contract.request import OPS

CONTROL_OPS = ("cancel", "shutdown", "limits")
MAX_LINE_CHARS = 1_000_000  # a request is a few hundred bytes: arrays travel as .npy files
SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_INT_ID = 2**53  # integers JSON readers on every side keep exactly


class ProtocolError(InputError):
    """A line that is not a valid request; ``rid`` is its id when that could be read (else None)."""

    def __init__(self, message: str, rid=None):
        super().__init__(message)
        self.rid = rid


def check_id(value):
    """A request id: an integer in [0, 2**53) or a short string of letters, digits, '_', '-', '.' (not only
    dots), used in result file names. Anything else -> ProtocolError."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_INT_ID:
        return value
    if isinstance(value, str) and SAFE_ID.fullmatch(value) and value.strip(".") != "":
        return value
    shown = json.dumps(value)[:40] if _jsonable(value) else type(value).__name__
    raise ProtocolError(f"id must be an integer >= 0 or a string of at most 64 letters, digits, '_', '-' or '.', "
                        f"got {shown}")


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def parse_line(text: str) -> dict:
    """One client line -> the message (an object with a known op and a safe id where the op needs one)."""
    if len(text) > MAX_LINE_CHARS:
        raise ProtocolError(f"request line of {len(text)} characters: at most {MAX_LINE_CHARS}")
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ProtocolError(f"bad request line: not JSON ({str(e)[:80]})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"bad request line: expected a JSON object, got {type(message).__name__}")
    op = message.get("op")
    if op not in OPS + CONTROL_OPS:
        rid = _readable_id(message.get("id"))
        raise ProtocolError(f"op must be one of {', '.join(OPS + CONTROL_OPS)}, got {json.dumps(op)[:40]}", rid)
    if op == "shutdown":
        return message
    message["id"] = check_id(message.get("id"))
    if op == "cancel":
        return message
    if not isinstance(message.get("model"), dict):
        raise ProtocolError("model must be an object (the MODEL spec)", message["id"])
    if op == "limits":
        return message
    if not isinstance(message.get("args", {}), dict):
        raise ProtocolError("args must be an object", message["id"])
    if not isinstance(message.get("out_dir"), str) or not message["out_dir"]:
        raise ProtocolError("out_dir must be the path of an existing folder", message["id"])
    return message


def _readable_id(value):
    try:
        return check_id(value)
    except ProtocolError:
        return None


def error_kind(error: BaseException) -> str:
    """"input" (the user can fix it: bad request, missing weights, unreadable source) or "failure"."""
    return "input" if isinstance(error, (InputError, FileNotFoundError, NotADirectoryError, PermissionError)) \
        else "failure"
