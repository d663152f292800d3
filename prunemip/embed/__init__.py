"""Routes that put a network inside the user's own optimisation model.

Each route builds the same big-M :class:`~prunemip.encoders.mip_model.MipModel` and
adds it to a host model: a Pyomo block (:mod:`~prunemip.embed.pyomo`), an OMLT
formulation (:mod:`~prunemip.embed.omlt`) or a highspy model (:mod:`~prunemip.embed.highs`).
"""
