"""pathosynth: pathology-aware generative augmentation of medical images."""

__version__ = "0.1.0"
