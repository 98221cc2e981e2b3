"""How a run ends. Stopping is an exception that carries its status, raised where the reason
is found (a limit, a passing check round, Ctrl-C) and caught once, in `Loop.run`."""

from __future__ import annotations

from enum import Enum

from ..errors import LoopError


class Status(str, Enum):
    VERIFIED = "verified"
    FINISHED = "finished"
    MAX_ITERATIONS = "max_iterations"
    MAX_TOKENS = "max_tokens"
    MAX_COST = "max_cost"
    TIMEOUT = "timeout"
    NO_PROGRESS = "no_progress"
    INTERRUPTED = "interrupted"
    ERROR = "error"


EXIT_CODES = {Status.VERIFIED: 0, Status.FINISHED: 0, Status.INTERRUPTED: 130, Status.ERROR: 3}


def exit_code(status: Status) -> int:
    return EXIT_CODES.get(status, 1)


class Stop(Exception):
    status: Status

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message


class Verified(Stop):
    status = Status.VERIFIED


class Finished(Stop):
    status = Status.FINISHED


class LimitReached(Stop):
    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status


class NoProgress(Stop):
    status = Status.NO_PROGRESS


class Interrupted(Stop):
    status = Status.INTERRUPTED


class Failed(Stop):
    status = Status.ERROR

    def __init__(self, error: LoopError):
        super().__init__(str(error))
        self.error = error
