"""GAN generators and discriminators, one file per family (METHODS.md)."""
