"""Conditional WGAN-GP guided by the feature graph and the constraint set, and synthetic balancing.

Modules: :mod:`~iotsynth.gan.settings` (hyperparameters),
:mod:`~iotsynth.gan.layers` (graph message passing and correlation loss),
:mod:`~iotsynth.gan.models` (generator, critic, model file),
:mod:`~iotsynth.gan.train` (training loop), :mod:`~iotsynth.gan.checkpoints`,
:mod:`~iotsynth.gan.sample` (synthesis with rejection) and
:mod:`~iotsynth.gan.balance` (the balancing protocols).
"""
