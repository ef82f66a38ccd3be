"""The one exception type users see: a one-line message, no traceback."""


class DefdropError(Exception):
    """Bad input or an unusable file; the message is one line that names the culprit."""
