"""Deciding questions about a network over an input region: falsify, bound, solve.

* :mod:`~prunemip.engine.falsify` — the gradient attack;
* :mod:`~prunemip.engine.attack` — adversarial examples (targeted and untargeted);
* :mod:`~prunemip.engine.verify` — VNN-LIB properties.
"""
