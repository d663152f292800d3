"""Deprecated alias of :mod:`prunemip.encoders.bounds.witnesses`, kept for one release."""

from prunemip._deprecated import moved_to

__getattr__ = moved_to("prunemip.encoders.bounds.witnesses", __name__)
