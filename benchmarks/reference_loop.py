"""The reference training step written straightforwardly (for tests and the throughput benchmark).

This is ``CycleGANModel.optimize_parameters`` of junyanz/pytorch-CycleGAN-and-pix2pix
transcribed line by line: ``forward`` (four generator calls), ``backward_G``
(two identity calls, each loss term computed on its own), ``backward_D_A`` and
``backward_D_B`` (separate real and fake discriminator forwards, separate
backward passes), fp32, no stacking. It runs on the networks, optimisers and
image pools of a :class:`deepsnow.gan.model.CycleGAN`, so both steps can be
compared on the very same state.

It lives outside the ``deepsnow`` package on purpose: it is not part of any stage,
so editing it changes no stage's code hash (and reruns no training). Tests and the
benchmarks import it with this folder on ``sys.path``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepsnow.gan.model import CycleGAN, set_requires_grad


def _gan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.tensor(1.0 if real else 0.0, device=pred.device).expand_as(pred)
    return F.mse_loss(pred, target)


def _backward_D_basic(netD, real, fake):
    loss_D_real = _gan_loss(netD(real), True)
    loss_D_fake = _gan_loss(netD(fake.detach()), False)
    loss_D = (loss_D_real + loss_D_fake) * 0.5
    loss_D.backward()
    return loss_D


def reference_step(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor) -> torch.Tensor:
    """One reference iteration; returns the 8 losses in :data:`deepsnow.gan.model.LOSS_NAMES` order."""
    lambda_A = lambda_B = m.lambda_cycle
    lambda_idt = m.lambda_idt
    # forward
    fake_B = m.G_A(real_A)
    rec_A = m.G_B(fake_B)
    fake_A = m.G_B(real_B)
    rec_B = m.G_A(fake_A)
    # G_A and G_B
    set_requires_grad([m.D_A, m.D_B], False)
    m.opt_G.zero_grad()
    if lambda_idt > 0:
        idt_A = m.G_A(real_B)
        loss_idt_A = F.l1_loss(idt_A, real_B) * lambda_B * lambda_idt
        idt_B = m.G_B(real_A)
        loss_idt_B = F.l1_loss(idt_B, real_A) * lambda_A * lambda_idt
    else:
        loss_idt_A = loss_idt_B = torch.zeros((), device=real_A.device)
    loss_G_A = _gan_loss(m.D_A(fake_B), True)
    loss_G_B = _gan_loss(m.D_B(fake_A), True)
    loss_cycle_A = F.l1_loss(rec_A, real_A) * lambda_A
    loss_cycle_B = F.l1_loss(rec_B, real_B) * lambda_B
    loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
    loss_G.backward()
    m.opt_G.step()
    # D_A and D_B
    set_requires_grad([m.D_A, m.D_B], True)
    m.opt_D.zero_grad()
    loss_D_A = _backward_D_basic(m.D_A, real_B, m.fake_B_pool.query(fake_B))
    loss_D_B = _backward_D_basic(m.D_B, real_A, m.fake_A_pool.query(fake_A))
    m.opt_D.step()
    return torch.stack(
        [loss_G_A, loss_G_B, loss_D_A, loss_D_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B]
    ).detach()
