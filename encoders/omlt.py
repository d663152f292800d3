"""Deprecated alias of :mod:`prunemip.embed.omlt` (the OMLT formulation), kept for one release."""

from prunemip._deprecated import moved_to

__getattr__ = moved_to("prunemip.embed.omlt", __name__)
