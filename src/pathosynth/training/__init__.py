"""The one training loop for every GAN family: data, checkpoints, EMA, distributed runs, stats."""
