"""Conditional WGAN-GP guided by the feature graph and the constraint set, and synthetic balancing.

Modules: :mod:`~iotsynth.gan.settings` (hyperparameters),
:mod:`~iotsynth.gan.layers` (graph message passing and correlation loss),
:mod:`~iotsynth.gan.models` (generator, critic, model file),
:mod:`~iotsynth.gan.trainer_base` (the training loop shared with the CTGAN
baseline), :mod:`~iotsynth.gan.train` (the WGAN's losses and trainer),
:mod:`~iotsynth.gan.checkpoints`,
:mod:`~iotsynth.gan.sample` (synthesis with rejection) and
:mod:`~iotsynth.gan.balance` (the balancing protocols).
"""
