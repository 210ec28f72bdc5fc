"""Errors the add-on shows to the user as a report (never a traceback)."""


class BammError(Exception):
    """A problem the user can fix; the message says what and how."""


class BammInputError(BammError):
    """Bad input: empty prompt, no armature, bad frame range, missing weights."""


class BammBackendError(BammError):
    """The generation backend failed: worker crashed, worker Python without torch, model error."""


class BammCancelled(BammError):
    """The user cancelled a running generation."""
