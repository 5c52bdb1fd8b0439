"""The translation stage (cycleGAN; CUT / FastCUT): networks, training, per-epoch samples and scene translation.

Modules:

- :mod:`deepsnow.gan.schedule` (torch-free): which epochs are saved, the
  learning-rate factor, checkpoint names; importable at Snakemake DAG-build time.
- :mod:`deepsnow.gan.sizes` (torch-free): input sizes the networks accept (config checks).
- :mod:`deepsnow.gan.networks`: the unmodified cycleGAN networks of Zhu et al.
  (2017) with the reference implementation's state-dict layout.
- :mod:`deepsnow.gan.cut`: the antialiased networks of CUT / FastCUT (Park et al. 2020) and
  the encoder layers PatchNCE compares.
- :mod:`deepsnow.gan.patchnce`: PatchNCE's patch sampler and heads (F) and its loss.
- :mod:`deepsnow.gan.cut_model`: the CUT / FastCUT training step (one generator, one
  discriminator, PatchNCE; ``gan.model``).
- :mod:`deepsnow.gan.data`: domain loading and the reference augmentation.
- :mod:`deepsnow.gan.model`: the cycleGAN training step (losses, optimisers,
  image pools).
- :mod:`deepsnow.gan.checkpoint`: reading and writing checkpoints.
- :mod:`deepsnow.gan.state`: :class:`~deepsnow.gan.state.RunState`, the one owner
  of a run's state, checkpoint and samples folders (resume, save, publish, prune).
- :mod:`deepsnow.gan.train`: ``deepsnow train`` (resumable, atomic).
- :mod:`deepsnow.gan.generate`: ``deepsnow generate`` (per-epoch samples).
- :mod:`deepsnow.gan.translate`: ``deepsnow translate`` (whole scenes, tiled).

Nothing here imports torch at package import time.
"""
