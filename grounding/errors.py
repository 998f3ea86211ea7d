"""User-facing errors.

Anything a user can cause (a missing file, a wrong feature dim, a line that does not parse) raises a
``GroundingError`` whose message names the file and the fix. The command-line tools print that message
alone, without a traceback, and exit with status 2. A run that logs to a file (``train.log``) gets the
fatal error there too, so the log of a failed run says why it ended.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar


class GroundingError(Exception):
    """An error caused by input or configuration, with a message that says how to fix it."""


F = TypeVar("F", bound=Callable[..., int | None])


def _file_handlers() -> list[logging.FileHandler]:
    """File handlers that messages of the ``grounding`` logger reach (its own and its ancestors')."""
    found: list[logging.FileHandler] = []
    logger: logging.Logger | None = logging.getLogger("grounding")
    while logger is not None:
        found.extend(h for h in logger.handlers if isinstance(h, logging.FileHandler))
        logger = logger.parent if logger.propagate else None
    return found


def log_fatal(message: str, exc_info: bool = False) -> None:
    """Write ``message`` to the log files only: stderr already shows it, once."""
    handlers = _file_handlers()
    if not handlers:
        return
    record = logging.getLogger("grounding").makeRecord(
        "grounding", logging.ERROR, __file__, 0, message, None, sys.exc_info() if exc_info else None)
    for handler in handlers:
        handler.handle(record)


def exit_cleanly_on_user_errors(main: F) -> F:
    """Wrap a CLI ``main`` so a ``GroundingError`` becomes one clear line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except GroundingError as err:
            log_fatal(f"error: {err}")
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            log_fatal("interrupted (KeyboardInterrupt)")
            raise
        except Exception as err:  # a bug, not bad input: the traceback goes to the log as well as to stderr
            log_fatal(f"crashed: {type(err).__name__}: {err}", exc_info=True)
            raise

    return wrapper  # type: ignore[return-value]
