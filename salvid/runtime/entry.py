"""How every entry point ends: errors a user can fix reported in one line, bugs with their traceback.

salvid's own errors (:class:`salvid.errors.SalvidError`: bad input data, a bad config value, an output that
would overwrite an input, a checkpoint or archive refused) carry a message that names the file or config key
and says what to do. The
entry points (``train``, ``evaluate``, ``predict``, ``export``, ``prepare``) print that message as one
line, ``error: <message>``, and exit with status 2. Anything else is a bug, or a failure salvid did not
foresee, and keeps its full traceback (exit status 1). ``HYDRA_FULL_ERROR=1`` shows the full traceback for
every error.

A run stopped by Ctrl-C (SIGINT) or SIGTERM ends the same way: one line saying so and the shell's status for the
signal (130, 143), after the code it stopped has cleaned up (``finally`` blocks run: a prediction records
that it stopped, a training run saves a checkpoint to resume from, see :class:`salvid.training.callbacks.Preemption`).
"""

from __future__ import annotations

import difflib
import errno
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from salvid.errors import SalvidError

EXIT_USER_ERROR = 2

# What other parts of the runtime run when a run ends, registered by them (the run guard releases its folder
# locks), so that this module imports only errors.
after_run: list[Callable[[], None]] = []
# ... and when a user's error ends it (the run guard removes the folders the refused run created)
after_refusal: list[Callable[[], None]] = []
FULL_ERROR_VAR = "HYDRA_FULL_ERROR"
_SET_BY_SALVID_VAR = "SALVID_SET_HYDRA_FULL_ERROR"  # processes started from an entry point inherit both

F = TypeVar("F", bound=Callable[..., Any])


class Stopped(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``kill``) turned into an exception, as Python turns SIGINT into KeyboardInterrupt,
    so that a stopped run cleans up as an interrupted one does."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _stop(signum: int, frame: Any) -> None:
    raise Stopped(signum)


def stop_line(interrupt: KeyboardInterrupt) -> str:
    """What stopped a run, in words: ``stopped by SIGTERM`` or ``stopped by Ctrl-C (SIGINT)``."""
    return str(interrupt) if isinstance(interrupt, Stopped) else "stopped by Ctrl-C (SIGINT)"


def stop_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit status for the signal that stopped a run: 128 + its number."""
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _user_error_types() -> tuple[type[BaseException], ...]:
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    return (SalvidError, ConfigCompositionException, MissingConfigException, OverrideParseException,
            MissingMandatoryValue, InterpolationResolutionError)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and those it was raised from (Hydra wraps a constructor's error in its own)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__


def user_error(error: BaseException) -> BaseException | None:
    """The salvid error type in ``error``'s chain, or None when it is an unexpected error."""
    types = _user_error_types()
    return next((e for e in _chain(error) if isinstance(e, types)), None)


# OS errors a user fixes (a path, a permission, the disk), and what to do about each
_OS_ADVICE = {
    errno.ENOSPC: "free some space, or write elsewhere (paths.output_dir=...)",
    errno.EDQUOT: "free some space, or write elsewhere (paths.output_dir=...)",
    errno.EACCES: "choose a folder you may write to (paths.output_dir=...), or change its permissions",
    errno.EPERM: "choose a folder you may write to (paths.output_dir=...), or change its permissions",
    errno.EROFS: "the file system is read-only; write elsewhere (paths.output_dir=...)",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "a folder is where a file was expected; check the path",
    errno.EEXIST: "it is in the way of a folder to be made there; move it away, or choose another folder "
                  "(paths.output_dir=...)",
}


def os_error(error: BaseException) -> OSError | None:
    """The OS error in ``error``'s chain that a user can fix, or None."""
    return next((e for e in _chain(error) if isinstance(e, OSError) and e.errno in _OS_ADVICE), None)


def os_error_line(error: OSError) -> str:
    where = error.filename if error.filename is not None else "a file"
    return f"{where}: {error.strerror or os.strerror(error.errno)}; {_OS_ADVICE[error.errno]}"


def _unknown_key_line(error: BaseException, lines: list[str]) -> str | None:
    """Hydra's "Could not override 'k'. To append to your config use +k=v" for a key the config lacks: the key and
    the nearest existing key (a typo is the usual cause), or, with none near, how a new key is added."""
    cause = error.__cause__
    key, parent = getattr(cause, "full_key", None), getattr(cause, "parent_node", None)
    if not (key and lines[0].startswith("Could not override") and len(lines) > 1 and "+" in lines[1]):
        return None
    prefix, _, name = str(key).rpartition(".")
    siblings = [str(k) for k in parent.keys() if str(k) not in ("hydra", name)] if hasattr(parent, "keys") else []
    close = difflib.get_close_matches(name, siblings, n=1)
    if close:  # a typo: adding the key as new would not help
        return f"{key}: no such setting; did you mean {prefix + '.' if prefix else ''}{close[0]}?"
    return f"{key}: no such setting; check its spelling (a new key is added with {lines[1].rsplit(' ', 1)[-1]})"


def _hydra_line(error: BaseException) -> str | None:
    """Hydra's multi-line errors that matter on one line: a missing config with its options, an override that
    does not parse with what to do."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    unknown = _unknown_key_line(error, lines)
    if unknown:
        return unknown
    if len(lines) > 1 and "Could not find" in lines[0] and lines[1].startswith("Available options"):
        options = [line for line in lines[2:] if not line.startswith(("Config search path", "provider="))]
        return f"{lines[0]}; {lines[1].rstrip(':').lower()}: {', '.join(options)}"
    if lines and lines[0].startswith(("LexerNoViableAltException", "mismatched input", "no viable alternative")):
        override = lines[0].split(": ", 1)[-1]
        key, _, value = override.partition("=")
        return (f"{override}: Hydra cannot read this value; quote it, with the quotes kept from the shell: "
                f"'{key}=\"{value}\"'")
    return None


def one_line(error: BaseException) -> str:
    """The message as one line. A dataloader worker's error arrives as a report whose last line is the
    original ``Type: message``; long messages (torch's size-mismatch lists) keep their first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if any(line.startswith("Original Traceback") for line in lines):
        return lines[-1].split(": ", 1)[-1]
    if type(error).__module__.startswith("hydra") and _hydra_line(error):
        return _hydra_line(error)
    if type(error).__module__.startswith("hydra") and len(lines) > 1:  # Hydra's second line is its hint
        return f"{lines[0]} {lines[1]}"
    if type(error).__module__.startswith("omegaconf"):  # then full_key/object_type: the first line says it
        return lines[0]
    if len(lines) > 1:
        return f"{lines[0]} (+{len(lines) - 1} more lines with {FULL_ERROR_VAR}=1)"
    return lines[0]


def _user_wants_traceback() -> bool:
    return os.environ.get(FULL_ERROR_VAR) == "1" and _SET_BY_SALVID_VAR not in os.environ


def _fixable_line(error: BaseException) -> str | None:
    """The one line for an error a user can fix (salvid's own, Hydra's, or an OS error naming a path); None for
    anything else, which keeps its traceback."""
    found = user_error(error)
    if found is not None:
        return f"error: {one_line(found)}"
    fixable = os_error(error)
    return None if fixable is None else f"error: {os_error_line(fixable)}"


def report(error: BaseException) -> int:
    """Report ``error`` as an entry point does, where it cannot propagate to one (a Hydra callback), and return
    the exit status: one line and 2 for a user's error, the traceback and 1 for anything else."""
    line = None if _user_wants_traceback() else _fixable_line(error)
    if line is None:
        traceback.print_exception(error)
        return 1
    print(line, file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def entry_point(main: F) -> F:
    """Run an entry point's ``main`` so that salvid's own errors end it with one line and exit status 2.

    Hydra prints a traceback for any error raised by a task unless ``HYDRA_FULL_ERROR`` is set, in which
    case it re-raises: setting it for the call lets the error reach this wrapper, which then decides. A
    user's own ``HYDRA_FULL_ERROR=1`` keeps every traceback.
    """

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user_wants_traceback = _user_wants_traceback()
        saved = {k: os.environ.get(k) for k in (FULL_ERROR_VAR, _SET_BY_SALVID_VAR)}
        if not user_wants_traceback:
            os.environ.update({FULL_ERROR_VAR: "1", _SET_BY_SALVID_VAR: "1"})
        on_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _stop) if on_main_thread else None
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt as interrupt:
            if user_wants_traceback:
                raise
            print(stop_line(interrupt), file=sys.stderr, flush=True)
            raise SystemExit(stop_status(interrupt)) from None
        except Exception as error:
            line = None if user_wants_traceback else _fixable_line(error)
            if line is None:
                raise
            print(line, file=sys.stderr, flush=True)
            refused()
            raise SystemExit(EXIT_USER_ERROR) from None
        except SystemExit as exit_:
            if exit_.code == EXIT_USER_ERROR:  # reported on its way out (one_line_errors, a Hydra callback)
                refused()
            raise
        finally:
            if on_main_thread:
                signal.signal(signal.SIGTERM, previous)
            for hook in after_run:
                hook()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    return wrapper  # type: ignore[return-value]


def refused() -> None:
    for hook in after_refusal:
        hook()


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Around the work of a Hydra task: in a single run, salvid's own errors end the process with one line
    right away (Hydra would print the job's overrides first). In a multirun they propagate: Hydra runs the
    other jobs, then names the failed job's overrides, and :func:`entry_point` reports the error."""
    try:
        yield
    except Exception as error:
        line = None if _user_wants_traceback() or in_multirun() else _fixable_line(error)
        if line is None:
            raise
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
