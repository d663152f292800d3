"""Neuron bounds and the big-M formulation of a :class:`~prunemip.network.Network`.

Solver-agnostic: everything here produces numpy/scipy arrays (``MipModel``) that any
MIP solver or modelling layer can consume.
"""
