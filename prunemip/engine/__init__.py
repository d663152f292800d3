"""Deciding questions about a network over an input region: falsify, bound, solve.

* :mod:`~prunemip.engine.spec` — the one question (:class:`~prunemip.engine.spec.Spec`: an input
  region and a disjunction of conjunctions of output rows), and how attacks and VNN-LIB
  properties map onto it;
* :mod:`~prunemip.engine.decide` — the engine that answers it, cheapest stage first:
  bounds, :mod:`~prunemip.engine.falsify` (the gradient attack),
  :mod:`~prunemip.engine.bab` (branch and bound over ReLU splits on the linear bounds, with
  :mod:`~prunemip.engine.subdomains` and :mod:`~prunemip.engine.beta`),
  :mod:`~prunemip.engine.surrogate` (a pruned copy's MIPs, checked on the network) and
  :mod:`~prunemip.engine.mip` (one conjunction's slack MIP, with
  :mod:`~prunemip.engine.slack`); :mod:`~prunemip.engine.progress` is what it reports as it goes;
* :mod:`~prunemip.engine.attack` — adversarial examples (targeted and untargeted) over the
  engine, with :mod:`~prunemip.engine.results` (witnesses re-checked by a forward pass);
* :mod:`~prunemip.engine.verify` — VNN-LIB properties over the engine.
"""
