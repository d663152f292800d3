"""Deciding questions about a network over an input region: falsify, bound, solve.

* :mod:`~prunemip.engine.falsify` — the gradient attack;
* :mod:`~prunemip.engine.attack` — adversarial examples (targeted and untargeted), with
  :mod:`~prunemip.engine.targets` (target order, one margin MIP per target) and
  :mod:`~prunemip.engine.results` (witnesses re-checked by a forward pass, results);
* :mod:`~prunemip.engine.bab` — branch and bound over ReLU splits on the linear bounds, with
  :mod:`~prunemip.engine.subdomains` (subdomains, their bounds, BaBSR/FSB branching),
  :mod:`~prunemip.engine.beta` (α,β-CROWN parameters optimised in torch) and
  :mod:`~prunemip.engine.slack` (the slack MIP of a conjunction of output rows);
* :mod:`~prunemip.engine.verify` — VNN-LIB properties.
"""
