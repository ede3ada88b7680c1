"""Importers: turn a folder in a layout the field uses into a pathosynth dataset folder."""
