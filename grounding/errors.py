"""User-facing errors.

Anything a user can cause (a missing file, a wrong feature dim, a line that does not parse) raises a
``GroundingError`` whose message names the file and the fix. The command-line tools print that message
alone, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar


class GroundingError(Exception):
    """An error caused by input or configuration, with a message that says how to fix it."""


F = TypeVar("F", bound=Callable[..., int | None])


def exit_cleanly_on_user_errors(main: F) -> F:
    """Wrap a CLI ``main`` so a ``GroundingError`` becomes one clear line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except GroundingError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
