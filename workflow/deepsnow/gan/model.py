"""The cycleGAN training step (reference ``CycleGANModel.optimize_parameters``) and the image pool.

Losses (reference defaults): LSGAN (MSE against 1 for real, 0 for fake),
cycle L1 x ``lambda_cycle``, identity L1 x ``lambda_cycle`` x ``lambda_identity``,
discriminator loss 0.5 x (real + fake) on pooled fakes. One Adam optimiser for
both generators, one for both discriminators, each with the linear learning-rate
rule of :func:`deepsnow.gan.schedule.lr_factor`.

The step computes exactly the reference's quantities, arranged to run faster:

- ``G_A`` translates ``real_A`` and maps ``real_B`` to itself (identity) in one
  forward of the two images stacked; the same for ``G_B`` (instance norm
  normalises every image on its own, so stacking changes nothing);
- each discriminator sees the real and the pooled fake images in one forward;
- optional autocast (bf16 / fp16 with a gradient scaler), channels-last memory
  and ``torch.compile`` on request.

Loss order everywhere (CSV columns, the loss vector): :data:`LOSS_NAMES`.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from deepsnow.gan import networks, runtime
from deepsnow.gan.data import RGB, BandSet, to_unit
from deepsnow.gan.schedule import lr_factor

LOSS_NAMES = ("G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")


class ImagePool:
    """Reference ``ImagePool``: a buffer of up to ``pool_size`` earlier fakes.

    Until full, every new image is stored and returned. Then, with probability
    0.5, a random stored image is returned and replaced by the new one; otherwise
    the new image is returned. Randomness comes from the pool's own generator, so
    the pool's whole state (images and generator) can be saved and restored.
    """

    def __init__(self, pool_size: int, seed: int = 0):
        self.pool_size = int(pool_size)
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            else:
                p = torch.rand((), generator=self.generator).item()
                if p > 0.5:
                    rid = int(torch.randint(0, self.pool_size, (), generator=self.generator).item())
                    old = self.images[rid].clone()
                    self.images[rid] = image
                    out.append(old)
                else:
                    out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        images = torch.cat([im.detach().cpu() for im in self.images], 0) if self.images else torch.empty(0)
        return {"pool_size": self.pool_size, "images": images, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device=None) -> None:
        self.pool_size = int(state["pool_size"])
        imgs = state["images"]
        self.images = [im.unsqueeze(0).to(device) for im in imgs] if imgs.numel() else []
        self.generator.set_state(state["rng"])


class LinearRule:
    """The reference ``linear`` LR rule as an object: its ``__dict__`` (two ints) is what
    ``LambdaLR.state_dict`` stores, so checkpoints stay loadable with ``weights_only=True``."""

    def __init__(self, n_epochs: int, n_epochs_decay: int):
        self.n_epochs = int(n_epochs)
        self.n_epochs_decay = int(n_epochs_decay)

    def __call__(self, epoch_index: int) -> float:
        return lr_factor(epoch_index, self.n_epochs, self.n_epochs_decay)


class Forward(NamedTuple):
    """The generator images of one step (``idt_*`` None when ``lambda_identity`` is 0)."""

    fake_B: torch.Tensor  # G_A(real_A)
    fake_A: torch.Tensor  # G_B(real_B)
    rec_A: torch.Tensor  # G_B(fake_B)
    rec_B: torch.Tensor  # G_A(fake_A)
    idt_A: torch.Tensor | None  # G_A(real_B)
    idt_B: torch.Tensor | None  # G_B(real_A)


def gan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """LSGAN loss: mean squared distance of the predictions to 1 (real) or 0 (fake), in fp32."""
    target = torch.ones_like if real else torch.zeros_like
    return F.mse_loss(pred.float(), target(pred, dtype=torch.float32))


def loss_D_basic(pred: torch.Tensor, n_real: int) -> torch.Tensor:
    """The loss of reference ``backward_D_basic`` (its backward runs once, for both discriminators):
    0.5 x (real + fake) on one forward of ``n_real`` real images, then the pooled fakes."""
    return 0.5 * (gan_loss(pred[:n_real], True) + gan_loss(pred[n_real:], False))


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class Trainer:
    """What every model's training shares: input preparation, mixed-precision backward and optimiser
    steps, train mode and the current learning rate (``nets``, ``opt_G``, ``scaler``, ``device`` and
    ``channels_last`` come from the model)."""

    nets: tuple[nn.Module, ...]
    #: The bands the networks take and give (one channel each), stored in the checkpoint; the training
    #: job sets the training data's (:func:`deepsnow.gan.train.train`).
    bands: BandSet = RGB

    def train_mode(self) -> None:
        for net in self.nets:
            net.train()

    @property
    def lr(self) -> float:
        return float(self.opt_G.param_groups[0]["lr"])

    def prepare(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = to_unit(x_uint8, self.device)  # uint8 / 127.5 - 1, or uint16 unit codes / 32767.5 - 1
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _step(self, opt) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)
        else:
            opt.step()


class CycleGAN(Trainer):
    """Two generators, two discriminators, their optimisers, schedulers and image pools
    (``params``: the validated gan section)."""

    loss_names = LOSS_NAMES

    def __init__(self, params: dict, device: torch.device, arch: networks.Architecture | None = None):
        self.params = params
        self.device = device
        self.arch = arch or networks.Architecture.from_params(params)
        self.precision = params["precision"]
        runtime.check_precision(self.precision, device)
        self.lambda_cycle = float(params["lambda_cycle"])
        self.lambda_idt = float(params["lambda_identity"])
        # Same construction order as the reference: G_A, G_B, D_A, D_B (initialised from the global RNG).
        self.G_A = networks.build_generator(self.arch).to(device)
        self.G_B = networks.build_generator(self.arch).to(device)
        self.D_A = networks.build_discriminator(self.arch).to(device)
        self.D_B = networks.build_discriminator(self.arch).to(device)
        self.channels_last = bool(params["channels_last"]) and device.type == "cuda"
        if self.channels_last:
            for net in self.nets:
                net.to(memory_format=torch.channels_last)
        betas = (float(params["beta1"]), 0.999)
        extra = {"fused": True} if device.type == "cuda" else {}
        self.opt_G = torch.optim.Adam(
            itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=float(params["lr"]), betas=betas, **extra
        )
        self.opt_D = torch.optim.Adam(
            itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=float(params["lr"]), betas=betas, **extra
        )
        rule = LinearRule(params["n_epochs"], params["n_epochs_decay"])
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, lr_lambda=rule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(
            self.opt_D, lr_lambda=LinearRule(rule.n_epochs, rule.n_epochs_decay)
        )
        seed = int(params["seed"])
        self.fake_A_pool = ImagePool(params["pool_size"], seed=seed * 2 + 1)
        self.fake_B_pool = ImagePool(params["pool_size"], seed=seed * 2 + 2)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        # Callables used in the step (compiled when asked; the modules above stay the ones saved).
        self.fG_A, self.fG_B, self.fD_A, self.fD_B = self.G_A, self.G_B, self.D_A, self.D_B
        if params["compile"]:
            self.fG_A, self.fG_B, self.fD_A, self.fD_B = (torch.compile(n) for n in self.nets)

    @property
    def nets(self) -> tuple[nn.Module, ...]:
        return (self.G_A, self.G_B, self.D_A, self.D_B)

    # -- the training step (reference CycleGANModel: forward, backward_G, backward_D_basic, optimize_parameters)
    # Paper names: G_A is G (A -> B), G_B is F (B -> A), D_A is D_Y (judges domain B), D_B is D_X.
    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> torch.Tensor:
        """One reference iteration (``optimize_parameters``) on float batches in [-1, 1]; returns the
        8 losses in :data:`LOSS_NAMES` order (detached, fp32)."""
        ac = runtime.autocast(self.device, self.precision)
        # G_A and G_B: forward, then update with the discriminators frozen.
        set_requires_grad((self.D_A, self.D_B), False)
        with ac:
            fwd = self.forward(real_A, real_B)
            pred_fB = self.fD_A(fwd.fake_B)  # D_Y(G(x))
            pred_fA = self.fD_B(fwd.fake_A)  # D_X(F(y))
        loss_G_A, loss_G_B, loss_cyc_A, loss_cyc_B, loss_idt_A, loss_idt_B = self.backward_G(
            real_A, real_B, fwd, pred_fB, pred_fA
        )
        # D_A and D_B: real vs pooled fake, one forward each.
        set_requires_grad((self.D_A, self.D_B), True)
        loss_D_A, loss_D_B = self.backward_D(real_A, real_B, fwd, ac)
        if self.scaler is not None:
            self.scaler.update()
        return (
            torch.stack([loss_G_A, loss_G_B, loss_D_A, loss_D_B, loss_cyc_A, loss_cyc_B, loss_idt_A, loss_idt_B])
            .detach()
            .float()
        )

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor) -> Forward:
        """The generator images: translations, reconstructions and (when ``lambda_identity`` > 0) identities.

        Instance norm normalises every image on its own, so a generator translating and mapping to
        itself in one forward of the two batches stacked computes exactly the reference's two calls.
        """
        n = real_A.shape[0]
        use_idt = self.lambda_idt > 0
        if use_idt and real_B.shape[0] == n:
            fake_B, idt_A = self.fG_A(torch.cat([real_A, real_B], 0)).split(n, 0)  # G(x), G(y)
            fake_A, idt_B = self.fG_B(torch.cat([real_B, real_A], 0)).split(n, 0)  # F(y), F(x)
        else:
            fake_B, fake_A = self.fG_A(real_A), self.fG_B(real_B)
            idt_A = self.fG_A(real_B) if use_idt else None
            idt_B = self.fG_B(real_A) if use_idt else None
        rec_A = self.fG_B(fake_B)  # F(G(x))
        rec_B = self.fG_A(fake_A)  # G(F(y))
        return Forward(fake_B, fake_A, rec_A, rec_B, idt_A, idt_B)

    def backward_G(self, real_A, real_B, fwd: Forward, pred_fB, pred_fA) -> tuple[torch.Tensor, ...]:
        """Adversarial (LSGAN), cycle and identity losses of both generators, then their update;
        returns ``(G_A, G_B, cycle_A, cycle_B, idt_A, idt_B)``."""
        loss_G_A = gan_loss(pred_fB, True)
        loss_G_B = gan_loss(pred_fA, True)
        loss_cyc_A = F.l1_loss(fwd.rec_A.float(), real_A) * self.lambda_cycle  # ||F(G(x)) - x||_1
        loss_cyc_B = F.l1_loss(fwd.rec_B.float(), real_B) * self.lambda_cycle  # ||G(F(y)) - y||_1
        if self.lambda_idt > 0:
            loss_idt_A = F.l1_loss(fwd.idt_A.float(), real_B) * self.lambda_cycle * self.lambda_idt
            loss_idt_B = F.l1_loss(fwd.idt_B.float(), real_A) * self.lambda_cycle * self.lambda_idt
        else:
            loss_idt_A = loss_idt_B = torch.zeros((), device=self.device)
        loss_G = loss_G_A + loss_G_B + loss_cyc_A + loss_cyc_B + loss_idt_A + loss_idt_B
        self.opt_G.zero_grad(set_to_none=True)
        self._backward(loss_G)
        self._step(self.opt_G)
        return loss_G_A, loss_G_B, loss_cyc_A, loss_cyc_B, loss_idt_A, loss_idt_B

    def backward_D(self, real_A, real_B, fwd: Forward, ac) -> tuple[torch.Tensor, torch.Tensor]:
        """Both discriminators on real and pooled fake images, then their update; returns ``(D_A, D_B)``."""
        pooled_B = self.fake_B_pool.query(fwd.fake_B.detach())
        pooled_A = self.fake_A_pool.query(fwd.fake_A.detach())
        with ac:
            pred_A = self.fD_A(torch.cat([real_B, pooled_B], 0))
            pred_B = self.fD_B(torch.cat([real_A, pooled_A], 0))
        loss_D_A = loss_D_basic(pred_A, real_B.shape[0])
        loss_D_B = loss_D_basic(pred_B, real_A.shape[0])
        self.opt_D.zero_grad(set_to_none=True)
        self._backward(loss_D_A + loss_D_B)
        self._step(self.opt_D)
        return loss_D_A, loss_D_B

    def end_epoch(self) -> None:
        """Advance the learning-rate schedule (reference: once per epoch)."""
        self.sched_G.step()
        self.sched_D.step()

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "G_A": self.G_A.state_dict(),
            "G_B": self.G_B.state_dict(),
            "D_A": self.D_A.state_dict(),
            "D_B": self.D_B.state_dict(),
            "optimizer_G": self.opt_G.state_dict(),
            "optimizer_D": self.opt_D.state_dict(),
            "scheduler_G": self.sched_G.state_dict(),
            "scheduler_D": self.sched_D.state_dict(),
            "pool_fake_A": self.fake_A_pool.state_dict(),
            "pool_fake_B": self.fake_B_pool.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state_dict(self, state: dict, source: str) -> None:
        for key, net in zip(("G_A", "G_B", "D_A", "D_B"), self.nets):
            networks.load_state_strict(net, state[key], source, key)
        self.opt_G.load_state_dict(state["optimizer_G"])
        self.opt_D.load_state_dict(state["optimizer_D"])
        self.sched_G.load_state_dict(state["scheduler_G"])
        self.sched_D.load_state_dict(state["scheduler_D"])
        self.fake_A_pool.load_state_dict(state["pool_fake_A"], self.device)
        self.fake_B_pool.load_state_dict(state["pool_fake_B"], self.device)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
