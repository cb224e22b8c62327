"""One generator step and one discriminator step, as plain functions.

The Ray trainer calls these with DDP-wrapped modules; a test calls them with plain ones. Each
step runs its forward passes under optional bf16 autocast and computes losses in float32.
Losses come back as detached 0-dim tensors on the batch's device: reading them (`float()`) waits
for the device, so callers read them when they log, not every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from srgan.losses import LossFn, adversarial_bce, generator_adversarial_loss


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when `enabled`, otherwise a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Turn off gradients for `module`'s parameters for the duration (restored afterwards)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def generator_step(g: nn.Module, g_opt: torch.optim.Optimizer, lr: torch.Tensor, hr: torch.Tensor,
                   content: LossFn, d: nn.Module | None = None, adversarial_weight: float = 0.0,
                   bf16: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimizer step of G on content loss (+ adversarial_weight * -log D(G(lr)) when d is given).

    Args:
        lr: (B, 3, h, w) in [0, 1]; hr: (B, 3, h*s, w*s) in [0, 1].
        d: the discriminator, unwrapped (not DDP): it is frozen here and only carries gradient to G.

    Returns:
        The step's losses (detached 0-dim tensors), and the detached SR batch (B, 3, h*s, w*s) for the D step.
    """
    g_opt.zero_grad(set_to_none=True)
    with autocast(lr.device, bf16):
        sr = g(lr)
    loss = content_loss = content(sr.float(), hr)
    logs = {"content": content_loss.detach()}
    if d is not None:
        with frozen(d), autocast(lr.device, bf16):
            adv = generator_adversarial_loss(d(sr).float())
        loss = content_loss + adversarial_weight * adv
        logs["adversarial"] = adv.detach()
    loss.backward()
    g_opt.step()
    logs["g_loss"] = loss.detach()
    return logs, sr.detach()


def discriminator_step(d: nn.Module, d_opt: torch.optim.Optimizer, hr: torch.Tensor, sr: torch.Tensor,
                       bf16: bool = False) -> dict[str, torch.Tensor]:
    """One optimizer step of D on BCE(D(hr), 1) + BCE(D(sr), 0).

    Real and fake each get their own forward and backward (gradients accumulate), which keeps
    DDP's one-forward-one-backward rule and per-batch BN statistics as in the paper.
    """
    d_opt.zero_grad(set_to_none=True)
    logs = {}
    for name, batch in (("real", hr), ("fake", sr.detach())):
        with autocast(hr.device, bf16):
            logits = d(batch).float()
        loss = adversarial_bce(logits, real=name == "real")
        loss.backward()
        logs[f"d_{name}_loss"] = loss.detach()
        logs[f"d_{name}_prob"] = torch.sigmoid(logits.detach()).mean()
    d_opt.step()
    logs["d_loss"] = logs["d_real_loss"] + logs["d_fake_loss"]
    return logs
