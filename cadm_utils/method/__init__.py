"""The method layer: networks (models), channel masking (Eq. 5-6), losses (Eq. 1-9), the
experts' pretraining objectives, augmentation, synthetic sets, the method classes and
their registry (methods), and the distillation and training loops."""
