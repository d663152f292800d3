"""Deprecated alias of :mod:`prunemip.embed.highs` (the highspy handle), kept for one release."""

from prunemip._deprecated import moved_to

__getattr__ = moved_to("prunemip.embed.highs", __name__)
