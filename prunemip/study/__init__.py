"""Studies: grids of (architecture, pruning method, sparsity, seed) × test images, run on
Dask and reported as tables and figures (``prunemip experiment run|report``)."""
