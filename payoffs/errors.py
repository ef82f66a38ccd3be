"""The one exception type users see: a one-line message, no traceback."""


class DefdropError(ValueError):
    """Bad input or an unusable file; the message is one line that names the culprit.

    A ``ValueError``, so code that validates input generically catches it too.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout`` and job schedulers send), raised by the CLI's handler so that the command
    unwinds exactly as on Ctrl-C: workers stopped, finished cells kept."""
