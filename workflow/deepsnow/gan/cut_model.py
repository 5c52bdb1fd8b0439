"""The CUT / FastCUT training step (reference ``CUTModel.optimize_parameters``).

One generator ``G_A`` (A -> B), one discriminator ``D_A`` (judges domain B) and the PatchNCE head
``F``; the reference's ``netG``, ``netD`` and ``netF`` (docs/cut.md). FastCUT is the same model with
other settings, as the reference's one ``CUTModel`` with ``--CUT_mode``: the schema fills
``lambda_NCE`` 1 / ``nce_idt`` on / no flips for ``cut`` and ``lambda_NCE`` 10 / ``nce_idt`` off /
``flip_equivariance`` on for ``fastcut``.

One iteration, in the reference's order:

1. ``G_A`` translates ``real_A`` (and, with ``nce_idt``, maps ``real_B`` in the same forward; instance
   norm normalises each image on its own). With ``flip_equivariance`` the input is flipped left-right
   with probability 0.5.
2. ``D_A`` is updated: LSGAN, 0.5 x (real B against 1 + fake B against 0); no image pool.
3. ``G_A`` and ``F`` are updated: ``lambda_GAN`` x LSGAN(D_A(fake B), 1) plus PatchNCE between
   ``real_A`` and ``fake_B`` (x ``lambda_NCE``, averaged over the layers), averaged with the identity
   term between ``real_B`` and ``G_A(real_B)`` when ``nce_idt``.

``F``'s heads are made on the first batch (the reference's ``data_dependent_initialize``), then
its Adam optimiser and linear schedule. All three optimisers are the reference's Adam (``lr``,
betas ``(beta1, 0.999)``) with the linear rule of :func:`deepsnow.gan.schedule.lr_factor`.

Loss order (CSV columns, the loss vector): :data:`LOSS_NAMES`, the reference's names.
"""

from __future__ import annotations

import torch
from torch import nn

from deepsnow.gan import cut, networks, runtime
from deepsnow.gan.model import LinearRule, Trainer, gan_loss, set_requires_grad
from deepsnow.gan.patchnce import PatchSampleF, patchnce_loss

#: ``G`` is G_GAN + the NCE terms (their mean with ``nce_idt``); ``NCE_Y`` is 0 without ``nce_idt``.
LOSS_NAMES = ("G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y")

#: Width of F's heads (the reference's ``--netF_nc``).
NETF_NC = 256


class CUT(Trainer):
    """Generator, discriminator, F, their optimisers and schedules (``params``: the validated gan section
    with ``model`` cut or fastcut)."""

    loss_names = LOSS_NAMES

    def __init__(self, params: dict, device: torch.device, arch: networks.Architecture | None = None):
        self.params = params
        self.device = device
        self.arch = arch or cut.architecture(params)
        self.precision = params["precision"]
        runtime.check_precision(self.precision, device)
        self.lambda_GAN = float(params["lambda_GAN"])
        self.lambda_NCE = float(params["lambda_NCE"])
        self.nce_idt = bool(params["nce_idt"])
        self.flip_equivariance = bool(params["flip_equivariance"])
        self.nce_T = float(params["nce_T"])
        self.num_patches = int(params["num_patches"])
        self.nce_layers = cut.encoder_taps(self.arch.n_blocks, params.get("nce_layers"))
        seed = int(params["seed"])
        # The reference's construction order: G, F (no weights yet), D (initialised from the global RNG).
        self.G_A = cut.build_generator(self.arch).to(device)
        self.F = PatchSampleF(NETF_NC, seed=seed * 2 + 1).to(device)
        self.D_A = cut.build_discriminator(self.arch).to(device)
        self.flips = torch.Generator().manual_seed(seed * 2 + 2)
        self.channels_last = bool(params["channels_last"]) and device.type == "cuda"
        if self.channels_last:
            for net in (self.G_A, self.D_A):
                net.to(memory_format=torch.channels_last)
        self.rule = LinearRule(params["n_epochs"], params["n_epochs_decay"])
        self.opt_G, self.sched_G = self._adam(self.G_A)
        self.opt_D, self.sched_D = self._adam(self.D_A)
        self.opt_F = self.sched_F = None  # made with F's heads, on the first batch
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.fG, self.fD = self.G_A, self.D_A
        if params["compile"]:
            self.fG, self.fD = torch.compile(self.G_A), torch.compile(self.D_A)

    def _adam(self, net: nn.Module):
        extra = {"fused": True} if self.device.type == "cuda" else {}
        betas = (float(self.params["beta1"]), 0.999)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.params["lr"]), betas=betas, **extra)
        rule = LinearRule(self.rule.n_epochs, self.rule.n_epochs_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=rule)

    @property
    def nets(self) -> tuple[nn.Module, ...]:
        return (self.G_A, self.D_A, self.F)

    def make_heads(self, channels: list[int]) -> None:
        """F's heads for layers of ``channels`` channels, then F's optimiser and schedule."""
        self.F.create_mlp(channels)
        self.F.to(self.device)
        self.opt_F, self.sched_F = self._adam(self.F)

    # -- the training step ---------------------------------------------------
    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> torch.Tensor:
        """One reference iteration on float batches in [-1, 1]; returns the losses in :data:`LOSS_NAMES`
        order (detached, fp32)."""
        if self.opt_F is None:  # the reference's data_dependent_initialize
            with torch.no_grad():
                self.make_heads([f.shape[1] for f in self.G_A.encode(real_A[:1], self.nce_layers)])
        ac = runtime.autocast(self.device, self.precision)
        flipped = self.flip_equivariance and bool(torch.rand((), generator=self.flips).item() < 0.5)
        with ac:
            fake_B, idt_B = self.forward(real_A, real_B, flipped)
        loss_D_real, loss_D_fake = self.backward_D(real_B, fake_B, ac)
        losses = self.backward_G(real_A, real_B, fake_B, idt_B, flipped, ac)
        if self.scaler is not None:
            self.scaler.update()
        return torch.stack([losses[0], loss_D_real, loss_D_fake, *losses[1:]]).detach().float()

    def forward(self, real_A, real_B, flipped: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(fake_B, idt_B)``: G_A of real A and (with ``nce_idt``) of real B, flipped when ``flipped``."""
        n = real_A.shape[0]
        real = torch.cat([real_A, real_B], 0) if self.nce_idt else real_A
        if flipped:
            real = torch.flip(real, [3])
        fake = self.fG(real)
        return fake[:n], (fake[n:] if self.nce_idt else None)

    def backward_D(self, real_B, fake_B, ac) -> tuple[torch.Tensor, torch.Tensor]:
        """The discriminator on real B and the (detached) fake B, then its update; returns ``(D_real, D_fake)``."""
        set_requires_grad((self.D_A,), True)
        with ac:
            pred = self.fD(torch.cat([real_B, fake_B.detach()], 0))
        n = real_B.shape[0]
        loss_real, loss_fake = gan_loss(pred[:n], True), gan_loss(pred[n:], False)
        self.opt_D.zero_grad(set_to_none=True)
        self._backward(0.5 * (loss_real + loss_fake))
        self._step(self.opt_D)
        return loss_real, loss_fake

    def backward_G(self, real_A, real_B, fake_B, idt_B, flipped: bool, ac) -> tuple[torch.Tensor, ...]:
        """Adversarial and PatchNCE losses, then the update of G and F; returns ``(G_GAN, G, NCE, NCE_Y)``."""
        set_requires_grad((self.D_A,), False)
        self.opt_G.zero_grad(set_to_none=True)
        self.opt_F.zero_grad(set_to_none=True)
        with ac:
            loss_G_GAN = gan_loss(self.fD(fake_B), True) * self.lambda_GAN
            loss_NCE = self.nce_loss(real_A, fake_B, flipped)
            loss_NCE_Y = self.nce_loss(real_B, idt_B, flipped) if self.nce_idt else torch.zeros((), device=self.device)
        nce = 0.5 * (loss_NCE + loss_NCE_Y) if self.nce_idt else loss_NCE
        loss_G = loss_G_GAN + nce
        self._backward(loss_G)
        self._step(self.opt_G)
        self._step(self.opt_F)
        return loss_G_GAN, loss_G, loss_NCE, loss_NCE_Y

    def nce_loss(self, src: torch.Tensor, tgt: torch.Tensor, flipped: bool) -> torch.Tensor:
        """Reference ``calculate_NCE_loss``: PatchNCE between G_A's encoder features of ``tgt`` (queries,
        flipped back when the input was flipped) and of ``src`` (keys, same locations), x ``lambda_NCE``,
        averaged over the layers."""
        feat_q = self.G_A.encode(tgt, self.nce_layers)
        if flipped:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        # keys are detached in the loss: their graph would carry no gradient, so it is not built
        with torch.no_grad():
            feat_k, ids = self.F(self.G_A.encode(src, self.nce_layers), self.num_patches)
        feat_q, _ = self.F(feat_q, self.num_patches, ids)
        total = torch.zeros((), device=self.device)
        for q, k in zip(feat_q, feat_k):
            total = total + patchnce_loss(q.float(), k.float(), src.shape[0], self.nce_T).mean() * self.lambda_NCE
        return total / len(self.nce_layers)

    def end_epoch(self) -> None:
        """Advance the learning-rate schedules (reference: once per epoch)."""
        for sched in (self.sched_G, self.sched_D, self.sched_F):
            sched.step()

    # -- state -------------------------------------------------------------
    def _stateful(self) -> dict:
        """Checkpoint key -> object with ``state_dict``/``load_state_dict`` (networks first: F's heads
        must exist before its optimiser)."""
        parts = {"G_A": self.G_A, "D_A": self.D_A, "F": self.F}
        for net in "GDF":
            parts[f"optimizer_{net}"] = getattr(self, f"opt_{net}")
            parts[f"scheduler_{net}"] = getattr(self, f"sched_{net}")
        return parts

    def state_dict(self) -> dict:
        return {
            **{key: obj.state_dict() for key, obj in self._stateful().items()},
            "sampler_rng": self.F.rng_state(),
            "flip_rng": self.flips.get_state(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state_dict(self, state: dict, source: str) -> None:
        if self.opt_F is None:
            self.make_heads(self.F.heads_channels(state["F"]))
        for key, obj in self._stateful().items():
            if isinstance(obj, nn.Module):
                networks.load_state_strict(obj, state[key], source, key)
            else:
                obj.load_state_dict(state[key])
        self.F.set_rng_state(state["sampler_rng"])
        self.flips.set_state(state["flip_rng"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
