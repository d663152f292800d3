"""Deprecated alias of :mod:`prunemip.embed.pyomo` (the Pyomo block), kept for one release."""

from prunemip._deprecated import moved_to

__getattr__ = moved_to("prunemip.embed.pyomo", __name__)
