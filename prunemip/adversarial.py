"""Deprecated alias of :mod:`prunemip.engine.attack` (the MIP attack), kept for one release."""

from prunemip._deprecated import moved_to

__getattr__ = moved_to("prunemip.engine.attack", __name__)
