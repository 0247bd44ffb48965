"""K models of one architecture as stacked ``(K, ...)`` tensors: forward and DP-SGD gradients.

:func:`defenses.ensemble.train_ensemble` trains the stack; this module says
how to run it. Two ways, one interface:

* :class:`MLPStack`, for a plain ``nn.Sequential`` of ``Linear``, ``Dropout``
  and elementwise activations (the built-in MLP): batched matrix products,
  and the per-sample gradient norms of Opacus' ghost clipping (a record's
  ``Linear`` weight gradient is the outer product ``g aᵀ``, so its norm is
  ``‖g‖·‖a‖`` and the clipped sum is one batched product). Fewest operations.
* :class:`VmapStack`, for any other model: ``functional_call`` under ``vmap``
  over the models, per-sample gradients from ``vmap(grad)`` over records
  (these are materialized: K × batch × parameters numbers per DP step).

:func:`private_gradients` turns per-sample gradients into what Opacus hands
the optimizer: flat clipping, weighted sum, seeded Gaussian noise, division by
the expected batch size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

Tensors = dict[str, torch.Tensor]
_Taps = list[tuple[str, torch.Tensor, torch.Tensor]]
CLIP_EPSILON = 1e-6  # Opacus' flat clipping: min(1, C / (norm + 1e-6))
# Activations MLPStack applies as they are: elementwise, so the leading (K, B) dims pass through.
ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity)


class VmapStack:
    """K stacked models of any architecture torch.func runs: ``functional_call`` under ``vmap``.

    Args:
        model: one of the models; only its structure and train/eval flag are
            used, never its own weights.
        criterion: the training loss; a copy with ``reduction="none"`` gives
            one loss per record (same label smoothing).

    Example:
        >>> from torch.func import stack_module_state
        >>> models = [nn.Linear(3, 2), nn.Linear(3, 2)]
        >>> params, _ = stack_module_state(models)
        >>> stack = VmapStack(models[0], nn.CrossEntropyLoss())
        >>> stack.logits(params, torch.zeros(2, 5, 3), training=False).shape
        torch.Size([2, 5, 2])
    """

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        self.model = model
        self.per_record: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = copy.copy(criterion)
        self.per_record.reduction = "none"  # type: ignore[attr-defined]

    def logits(
        self, params: Mapping[str, torch.Tensor], X: torch.Tensor, *, training: bool
    ) -> torch.Tensor:
        """``(K, b, classes)`` logits of ``(K, b, ...)`` records, with dropout when ``training``."""
        self.model.train(training)

        def forward(p: Tensors, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.model, p, (x,))

        return vmap(forward, randomness="different")(dict(params), X)

    def losses(
        self, params: Mapping[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """``(K, b)`` training losses, one per record (dropout on)."""
        return self.record_losses(self.logits(params, X, training=True), y)

    def clipped_sums(
        self,
        params: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        max_grad_norm: float,
    ) -> tuple[Tensors, torch.Tensor]:
        """Each model's weighted sum of clipped per-sample gradients, and the ``(K, B)`` losses.

        Returns ``{name: (K, *shape)}`` for the trainable parameters, in
        ``params`` order.
        """
        trainable = {k: v for k, v in params.items() if v.requires_grad}
        frozen = {k: v for k, v in params.items() if not v.requires_grad}

        def loss(p: Tensors, f: Tensors, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            logits = functional_call(self.model, {**p, **f}, (x[None],))
            return self.per_record(logits, t[None])[0]

        self.model.train()
        per_record = vmap(grad_and_value(loss), in_dims=(None, None, 0, 0), randomness="different")
        grads, losses = vmap(per_record, randomness="different")(trainable, frozen, X, y)
        norms = torch.stack([g.flatten(start_dim=2).norm(2, dim=-1) for g in grads.values()], -1)
        factor = clip_factors(norms.norm(2, dim=-1), weights, max_grad_norm)
        sums = {k: torch.einsum("kb,kb...->k...", factor.to(g.dtype), g) for k, g in grads.items()}
        return sums, losses.detach()

    def record_losses(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(K, b)`` losses of ``(K, b, classes)`` logits against ``(K, b)`` labels."""
        K, b = y.shape
        flat = self.per_record(logits.reshape(K * b, *logits.shape[2:]), y.reshape(-1))
        return flat.view(K, b)


class MLPStack(VmapStack):
    """K stacked plain MLPs: batched matrix products and ghost-clipping norms.

    For the models :meth:`accepts`: an ``nn.Sequential`` of ``Linear``,
    ``Dropout`` and (not in-place) elementwise activations, all parameters
    trainable, no buffers. Dropout draws one mask per model and record.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__(model, criterion)
        self.layers = list(model.named_children())

    @staticmethod
    def accepts(model: nn.Module) -> bool:
        """True when ``model`` is a plain MLP this class runs exactly."""
        if type(model) is not nn.Sequential or any(True for _ in model.buffers()):
            return False
        if not all(p.requires_grad for p in model.parameters()):
            return False
        return all(
            type(layer) in (nn.Linear, nn.Dropout, *ELEMENTWISE)
            and not getattr(layer, "inplace", False)
            for layer in model.children()
        )

    def logits(
        self, params: Mapping[str, torch.Tensor], X: torch.Tensor, *, training: bool
    ) -> torch.Tensor:
        return self._forward(params, X, training=training)

    def clipped_sums(
        self,
        params: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        max_grad_norm: float,
    ) -> tuple[Tensors, torch.Tensor]:
        taps: _Taps = []  # (layer name, its input a, its output z) per Linear
        losses = self.record_losses(self._forward(params, X, training=True, taps=taps), y)
        # Records are independent, so d(sum of losses)/dz is each record's own gradient g.
        outputs = torch.autograd.grad(losses.sum(), [z for _, _, z in taps])
        inputs = [a.detach() for _, a, _ in taps]
        squared = torch.zeros_like(weights)
        for (name, _, _), a, g in zip(taps, inputs, outputs):
            g_sq = g.square().sum(-1)
            squared = squared + g_sq * a.square().sum(-1)  # ‖g aᵀ‖² = ‖g‖²‖a‖²
            if f"{name}.bias" in params:
                squared = squared + g_sq
        factor = clip_factors(squared.sqrt(), weights, max_grad_norm)
        sums: Tensors = {}
        for (name, _, _), a, g in zip(taps, inputs, outputs):
            scaled = g * factor.unsqueeze(-1)
            sums[f"{name}.weight"] = torch.bmm(scaled.transpose(1, 2), a)
            if f"{name}.bias" in params:
                sums[f"{name}.bias"] = scaled.sum(1)
        return {k: sums[k] for k in params}, losses.detach()

    def _forward(
        self,
        params: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        *,
        training: bool,
        taps: _Taps | None = None,
    ) -> torch.Tensor:
        for name, layer in self.layers:
            if isinstance(layer, nn.Linear):
                weight = params[f"{name}.weight"].transpose(1, 2)
                bias = params.get(f"{name}.bias")
                if bias is None:
                    out = torch.bmm(x, weight)
                else:
                    out = torch.baddbmm(bias.unsqueeze(1), x, weight)
                if taps is not None:
                    taps.append((name, x, out))
                x = out
            elif isinstance(layer, nn.Dropout):
                x = _dropout(x, layer.p) if training and layer.p > 0 else x
            else:
                x = layer(x)
        return x


def _dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout as ``F.dropout`` computes it, with the mask drawn by ``torch.rand``.

    The same distribution (keep with probability ``1 - p``, scale by
    ``1 / (1 - p)``) at about half the cost on the CPU, where
    ``F.dropout``'s Bernoulli draw dominates a small MLP's step.
    """
    if p >= 1:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, device=x.device) >= p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


def stack_for(model: nn.Module, criterion: nn.Module) -> VmapStack:
    """:class:`MLPStack` when it accepts ``model``, else :class:`VmapStack`."""
    return (MLPStack if MLPStack.accepts(model) else VmapStack)(model, criterion)


def private_gradients(
    stack: VmapStack,
    params: Mapping[str, torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generators: Sequence[torch.Generator],
) -> tuple[Tensors, torch.Tensor]:
    """One DP-SGD step's gradients for K models, as Opacus hands them to its optimizer.

    Every record's gradient (all parameters together) is scaled by
    ``min(1, C/(norm + 1e-6))``; the scaled gradients are summed with
    ``weights``; Gaussian noise of std ``σ·C`` is added to each coordinate;
    the sum is divided by the expected batch size (Opacus' ``"mean"``
    reduction under Poisson sampling).

    Args:
        stack: how to run the models.
        params: the stacked ``(K, ...)`` parameters.
        X: ``(K, B, ...)`` records; ``y``: ``(K, B)`` labels.
        weights: ``(K, B)``: 1 for a sampled record, 0 for padding.
        max_grad_norm: C.
        noise_multiplier: σ; 0 adds no noise and draws nothing (as Opacus).
        expected_batch_size: q·n as Opacus rounds it, the divisor.
        generators: one noise generator per model, on the parameters'
            device; model k's noise is drawn parameter by parameter in
            ``params`` order, the draws Opacus makes.

    Returns:
        ``{name: (K, *shape)}`` gradients of the trainable parameters and the
        ``(K, B)`` per-record losses.
    """
    sums, losses = stack.clipped_sums(params, X, y, weights, max_grad_norm)
    std = noise_multiplier * max_grad_norm
    grads = {}
    for name, summed in sums.items():
        if std != 0:
            noise = [
                torch.normal(0, std, size=summed.shape[1:], device=summed.device, generator=g)
                for g in generators
            ]
            summed = summed + torch.stack(noise)
        grads[name] = summed / expected_batch_size
    return grads, losses


def clip_factors(norms: torch.Tensor, weights: torch.Tensor, max_grad_norm: float) -> torch.Tensor:
    """Opacus' per-sample factor ``min(1, C/(norm + 1e-6))``, times the 0/1 weights.

    Example:
        >>> clip_factors(torch.tensor([[0.5, 4.0]]), torch.tensor([[1.0, 1.0]]), 1.0)
        tensor([[1.0000, 0.2500]])
    """
    return (max_grad_norm / (norms + CLIP_EPSILON)).clamp(max=1.0) * weights


__all__ = ["MLPStack", "VmapStack", "clip_factors", "private_gradients", "stack_for"]
