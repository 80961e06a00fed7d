"""The one error family gotel raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class GotelError(Exception):
    """Base of every error gotel reports to a user. Messages: lowercase, context first, fix last."""

    exit_code = EXIT_BAD_INPUT


# --- bad input (exit 2) ---
class BinaryError(GotelError):
    """The file given is not something gotel can instrument."""


class NotAnElfError(BinaryError):
    pass


class NotGoBinaryError(BinaryError):
    pass


class GoVersionUnsupportedError(BinaryError):
    pass


class SymbolNotFoundError(GotelError):
    pass


class OffsetUnavailableError(GotelError):
    pass


class TargetError(GotelError):
    """No such process, process exited, path does not exist."""


# --- environment (exit 3) ---
class EnvironmentProblem(GotelError):
    exit_code = EXIT_ENVIRONMENT


class MissingPrivilegeError(EnvironmentProblem):
    pass


class NotSupportedError(EnvironmentProblem):
    """A kernel or library feature gotel needs is missing."""


class BpfLoadError(EnvironmentProblem):
    pass


class AttachError(EnvironmentProblem):
    pass
