"""The one boundary for user errors: a bad config value, a missing or malformed file, a refused
resume, a tool pointed at something that is not a run.

Such a problem raises `UserError` (or a subclass) with a message that names the key or file and the
fix. Every command-line entry point runs through `run`, which prints that message on one line,
without a traceback, and exits with status 2. Any other exception is a bug and keeps its traceback.
`--debug` (or SBIRJAX_DEBUG=1) shows the traceback of a user error too.

This module imports nothing from sbirjax, so every layer (and tfds_builders) may raise its errors.
"""
from __future__ import annotations

import ast
import os
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with what the user gave (config, files, arguments), not a bug."""


class ConfigError(UserError, ValueError):
    """A config key holds a value the library cannot use."""


class DataError(UserError, ValueError):
    """The data (a split, a download) cannot serve what the config asks of it."""


class RunDirError(UserError, FileNotFoundError):
    """A run directory (or a file it should hold) is missing, or is not a run."""


class ResumeError(UserError, ValueError):
    """A run directory cannot be resumed with this config, or its checkpoints cannot be read."""


def debug() -> bool:
    if os.environ.get("SBIRJAX_DEBUG", "") not in ("", "0"):
        return True
    try:
        from absl import flags
        return bool(flags.FLAGS["debug"].value) if "debug" in flags.FLAGS else False
    except Exception:  # flags not parsed yet
        return False


def message(error: BaseException) -> str:
    """An exception's message without the traceback text some libraries embed in it (the config
    loader does): the words before it and the exception's own last line."""
    text = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
    for _ in range(3):  # a KeyError's text, quoted again by each layer that re-raised it
        if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            try:
                text = ast.literal_eval(text)
                continue
            except (ValueError, SyntaxError):
                pass
        break
    lines = text.strip().splitlines()
    if "Traceback (most recent call last):" in lines:
        cut = lines.index("Traceback (most recent call last):")
        head = " ".join(line.strip() for line in lines[:cut] if line.strip())
        tail = next((line.strip() for line in reversed(lines[cut:]) if line.strip()), "")
        return f"{head} {tail}".strip()
    return "\n".join(lines)


def report(error: BaseException, file=None) -> int:
    """Print a user error as one message (the first line starts with 'error:'); its exit status."""
    print(f"error: {error}", file=file or sys.stderr, flush=True)
    return EXIT_USER_ERROR


def guarded(fn):
    """`fn(argv) -> status` with user errors turned into their message and status 2."""
    def wrapper(argv):
        try:
            return fn(argv)
        except UserError as e:
            if debug():
                raise
            return report(e)
    wrapper.__name__ = getattr(fn, "__name__", "main")
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _parse_flags(argv):
    """absl's flag parsing, but a bad flag is a user error: one message and status 2. That covers
    an unknown flag or config key, a value of the wrong type and a config file that cannot load
    (parsing reads nothing but the command line and the config file)."""
    from absl import flags
    try:
        return flags.FLAGS(argv)
    except Exception as e:  # noqa: BLE001 - see the docstring
        if os.environ.get("SBIRJAX_DEBUG", "") not in ("", "0") or "--debug" in argv:
            raise
        if isinstance(e, (flags.Error, UserError)):
            what = message(e)
        elif isinstance(e, (AttributeError, KeyError)):  # an override of a key the config lacks
            what = f"unknown config key {message(e)}"
        else:
            what = f"{type(e).__name__}: {message(e)}"
        report(f"bad command line: {what}\n(--helpfull lists the flags; --debug shows the "
               "traceback)")
        sys.exit(EXIT_USER_ERROR)


def run(main) -> None:
    """absl's app.run with the user-error boundary around flag parsing and `main`."""
    from absl import app, flags
    if "debug" not in flags.FLAGS:
        flags.DEFINE_bool("debug", False, "show the traceback of a user error (or SBIRJAX_DEBUG=1)")
    app.run(guarded(main), flags_parser=_parse_flags)
