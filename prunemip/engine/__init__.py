"""Deciding questions about a network over an input region: falsify, bound, solve.

* :mod:`~prunemip.engine.falsify` — the gradient attack;
* :mod:`~prunemip.engine.attack` — adversarial examples (targeted and untargeted), with
  :mod:`~prunemip.engine.targets` (target order, one margin MIP per target) and
  :mod:`~prunemip.engine.results` (witnesses re-checked by a forward pass, results);
* :mod:`~prunemip.engine.verify` — VNN-LIB properties.
"""
