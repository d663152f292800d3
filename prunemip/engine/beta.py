"""Optimised slopes and split multipliers for a batch of subdomains, in torch (α,β-CROWN).

The upper bound of each row of ``−C y`` over a subdomain (the backward substitution of
:func:`~prunemip.encoders.bounds.linear.backward_bound`) is a function of the lower slopes
``α ∈ [0, 1]`` of its unstable ReLUs (α-CROWN; Xu et al., "Fast and Complete: Enabling
Complete Neural Network Verification with Rapid and Massively Parallel Incomplete
Verifiers", ICLR 2021) and of one multiplier ``β_j ≥ 0`` per split ``s_j ẑ_j ≥ 0``, whose
term ``β_j s_j ẑ_j`` is added to the coefficients of ``ẑ`` (β-CROWN; Wang et al.,
"Beta-CROWN: Efficient Bound Propagation with Per-neuron Split Constraints for Neural
Network Robustness Verification", NeurIPS 2021): every choice is a valid bound on the
subdomain, and the splits now constrain the input too, not only their own ReLU's line.

All subdomains of a step and all rows are optimised at once: tensors of shape
``(subdomains, rows, neurons)``, dense weights, projected Adam steps (Kingma & Ba, ICLR
2015) on the sum of the bounds (no two rows or subdomains share a parameter, so each is
minimised on its own), on ``device`` ("cpu" or "cuda"), in float32. Each row keeps the
parameters of its best value seen (the first is plain CROWN's). The values found here are
not trusted: the caller re-evaluates the parameters with the float-sound numpy bound in
float64, so the precision here only steers the search (measured on two MNIST 4x256 and
2x256 branch-and-bound runs of 20 s: float32 bounds 1.2–1.3× the subdomains of float64 and
reaches a tighter proven bound; ``experiments/benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prunemip.devices import torch_device
from prunemip.encoders.bounds.linear import minimise_bound, relu_relaxation
from prunemip.network import Network
from prunemip.regions import InputRegion

if TYPE_CHECKING:
    import torch

#: Adam steps per batch of subdomains (10: half of α,β-CROWN's default for the
#: branch-and-bound phase, which bounded 1.4× the subdomains in the same time and reached a
#: tighter bound on the runs above), and the step sizes of the slopes and multipliers.
ITERATIONS = 10
ALPHA_RATE = 0.1
BETA_RATE = 0.05


@dataclass(frozen=True)
class Parameters:
    """Per subdomain: the lower slopes and the split terms ``β s`` of every layer (``None``
    where a layer has neither), each of shape ``(rows, n_layer)``; see
    :func:`~prunemip.encoders.bounds.linear.backward_bound`'s ``lower_slopes`` and ``split_terms``."""

    slopes: list[np.ndarray | None]
    terms: list[np.ndarray | None]


class TorchNetwork:
    """The network's dense weights and biases on a torch device, for batched bounds."""

    def __init__(self, network: Network, region: InputRegion, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch_device(device)
        self.network = network
        self.region = region
        as_tensor = self._tensor
        self.weights = [as_tensor(layer.weight.toarray()) for layer in network.layers]
        self.biases = [as_tensor(layer.bias) for layer in network.layers]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return self.torch.as_tensor(np.ascontiguousarray(array), dtype=self.torch.float32, device=self.device)

    def optimise(
        self,
        coefficients: np.ndarray,
        lower: Sequence[np.ndarray],
        upper: Sequence[np.ndarray],
        signs: Sequence[np.ndarray],
        iterations: int = ITERATIONS,
        starts: Sequence[Parameters | None] | None = None,
    ) -> list[Parameters]:
        """Slopes and split multipliers that minimise each row's bound, per subdomain.

        Args:
            coefficients: the rows, shape ``(rows, n_outputs)`` (upper bounds of ``rows @ y``).
            lower: per layer, the subdomains' pre-activation lower bounds, ``(batch, n_layer)``.
            upper: the upper bounds likewise.
            signs: per layer, ``+1`` (active split), ``−1`` (inactive split) or 0, ``(batch, n_layer)``.
            iterations: Adam steps.
            starts: per subdomain, parameters to start from (its parent's: a warm start, as
                α,β-CROWN's), or ``None`` for CROWN's slopes and ``β = 0``.

        Returns:
            One :class:`Parameters` per subdomain.
        """
        torch = self.torch
        layers = self.network.layers
        last = len(layers) - 1
        batch, rows = lower[0].shape[0], coefficients.shape[0]
        lines, alpha, beta, unstable, split_sign = {}, {}, {}, {}, {}
        for k in range(last):
            if layers[k].activation != "relu":
                continue
            slope_up, intercept, slope_low = relu_relaxation(lower[k], upper[k])
            lines[k] = tuple(self._tensor(v)[:, None, :] for v in (slope_up, intercept, slope_low))
            mask = (lower[k] < 0.0) & (upper[k] > 0.0)
            if mask.any():
                unstable[k] = self._tensor(mask)[:, None, :].bool()
                crown = np.broadcast_to(slope_low[:, None, :], (batch, rows, layers[k].n_out))
                alpha[k] = self._tensor(_started(crown, starts, k, "slopes")).requires_grad_(True)
            if np.any(signs[k]):
                split_sign[k] = self._tensor(signs[k])[:, None, :]
                zero = np.zeros((batch, rows, layers[k].n_out))
                magnitude = np.abs(_started(zero, starts, k, "terms")) * (signs[k][:, None, :] != 0)
                beta[k] = self._tensor(magnitude).requires_grad_(True)
        C = self._tensor(coefficients)

        def bound() -> torch.Tensor:
            Lam = C.expand(batch, rows, -1)
            const = torch.zeros(batch, rows, dtype=C.dtype, device=self.device)
            for m in range(last, 0, -1):
                const = const + Lam @ self.biases[m]
                G = Lam @ self.weights[m]
                k = m - 1
                if k in lines:
                    slope_up, intercept, slope_low = lines[k]
                    if k in alpha:
                        slope_low = torch.where(unstable[k], alpha[k], slope_low)
                    positive = G.clamp(min=0.0)
                    Lam = positive * slope_up + G.clamp(max=0.0) * slope_low
                    const = const + (positive * intercept).sum(-1)
                else:
                    Lam = G
                if k in beta:
                    Lam = Lam + beta[k] * split_sign[k]
            const = const + Lam @ self.biases[0]
            inputs = (Lam @ self.weights[0]).reshape(batch * rows, -1)
            support = self.region.support_torch(inputs.double().cpu()).to(self.device, C.dtype)
            return const + support.reshape(batch, rows)

        params = {("alpha", k): a for k, a in alpha.items()} | {("beta", k): b for k, b in beta.items()}
        rates = {key: ALPHA_RATE if key[0] == "alpha" else BETA_RATE for key in params}
        multipliers = [key for key in params if key[0] == "beta"]
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(1)  # small products: more threads only contend
        try:
            best = minimise_bound(bound, params, rates, iterations, multipliers) if params else {}
        finally:
            torch.set_num_threads(threads)
        slopes = {k: best[("alpha", k)].double().cpu().numpy() for k in alpha}
        terms = {k: (best[("beta", k)] * split_sign[k]).double().cpu().numpy() for k in beta}
        return [
            Parameters(
                [slopes[k][b] if k in slopes else None for k in range(last + 1)],
                [terms[k][b] if k in terms else None for k in range(last + 1)],
            )
            for b in range(batch)
        ]


def _started(
    default: np.ndarray, starts: Sequence[Parameters | None] | None, layer: int, name: str
) -> np.ndarray:
    """``default`` (batch, rows, n) with each subdomain's start values of ``name`` at ``layer``."""
    values = np.array(default, dtype=np.float64)
    for b, start in enumerate(starts or ()):
        given = None if start is None else getattr(start, name)[layer]
        if given is not None:
            values[b] = given
    return values
