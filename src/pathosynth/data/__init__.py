"""The medical data layer: readers, writers, importers, phantoms and the dataset folder contract."""
