"""Constraint-guided CTGAN baseline, built on the ``ctgan`` library's components.

Modules: :mod:`~iotsynth.ctgan_guided.settings` (hyperparameters, shared
with the WGAN), :mod:`~iotsynth.ctgan_guided.transformer` (the library's
data transformer on the packet features),
:mod:`~iotsynth.ctgan_guided.bridge` (CTGAN's output mapped into the
preprocessor's space, where the constraint penalties work),
:mod:`~iotsynth.ctgan_guided.model` (the library's generator and
discriminator, the model file), :mod:`~iotsynth.ctgan_guided.train` (the
trainer, and what differs from ``ctgan.CTGAN.fit``) and
:mod:`~iotsynth.ctgan_guided.stages` (the workflow stages). Synthesis with
rejection, balancing and the figures reuse the WGAN's code.

The package is not named ``ctgan`` so that ``import ctgan`` always means
the library.
"""
