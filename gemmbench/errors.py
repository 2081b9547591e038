"""The one exception type for errors a user can fix; the CLI turns it into `Error: what — how to fix`."""


class GemmbenchError(Exception):
    """Something the user can fix: a bad file, an unwritable path, a run that cannot be read."""

    exit_code = 1

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what} — {fix}")
        self.what = what
        self.fix = fix


class UsageError(GemmbenchError):
    """A malformed command-line value (shape, M list, preset or backend name): exit code 2, like click."""

    exit_code = 2
