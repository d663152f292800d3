"""The one exception type for user mistakes.

Anything a user can cause (a bad file, an unsupported layer, a wrong shape, a negative
radius, unbounded inputs) raises :class:`PrunemipError` with a one-line message that
names the thing and the fix. The CLI prints it without a traceback and exits non-zero;
library users catch it like any ``ValueError``.
"""

from __future__ import annotations


class PrunemipError(ValueError):
    """A user-facing error whose message is a single, self-explanatory line."""
