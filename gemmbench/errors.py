"""The one exception type for errors a user can fix; the CLI turns it into `Error: what — how to fix`."""

# What a backend's (or a plugin's) code may raise that becomes its row's error: any exception, and
# SystemExit (a plugin that calls sys.exit). KeyboardInterrupt is not among them: Ctrl-C stops the session,
# keeping what finished.
BACKEND_FAILURES = (Exception, SystemExit)


def first_line(exc: BaseException) -> str:
    """The gist of an exception for a message: the first line of its text, else its type's name (an
    exception raised with no message)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def described(exc: BaseException) -> str:
    """An exception as a row's reason names it: `Type: its first line`, or `Type` where it has no message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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
