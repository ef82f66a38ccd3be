"""The one exception type users see: a one-line message, no traceback."""
from __future__ import annotations

import contextlib
from typing import Iterator


class DefdropError(ValueError):
    """Bad input or an unusable file; the message is one line that names the culprit.

    A ``ValueError``, so code that validates input generically catches it too.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout`` and job schedulers send), raised by the CLI's handler so that the command
    unwinds exactly as on Ctrl-C: workers stopped, finished cells kept."""


def exception_line(exc: BaseException, limit: int = 120) -> str:
    """``Type: first line of the message`` (cut to ``limit`` characters), for one-line error messages."""
    text = str(exc).strip()
    first = text.splitlines()[0][:limit] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def untrusted(what: str) -> Iterator[None]:
    """The boundary of a reader of untrusted bytes: any exception inside, whatever malformed input made a parser
    raise, leaves as ``DefdropError("<what> (<Type: message>)")``; a ``DefdropError`` leaves as it is.

    ``what`` names the file and what it should have been, e.g. ``"data/x: not an IDX file"``.
    """
    try:
        yield
    except DefdropError:
        raise
    except Exception as exc:  # noqa: BLE001 - the point: no other exception type crosses this line
        raise DefdropError(f"{what} ({exception_line(exc)})") from None
