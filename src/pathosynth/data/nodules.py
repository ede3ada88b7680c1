"""The lung-nodule vocabulary, defined once: 3D MCGAN's size classes and attenuation types, used by
the LUNA16 importer, the chest-CT phantom, the 3D MCGAN family, nodule placement and teaching cases."""

SIZES = ("small", "medium", "large")
ATTENUATIONS = ("solid", "part-solid", "ggn")
CONDITIONS = SIZES + ATTENUATIONS  # the generator's condition vector, in this order


def size_class(diameter_mm: float) -> str:
    """small <= 10 mm < medium <= 20 mm < large, as in 3D MCGAN."""
    return "small" if diameter_mm <= 10 else "medium" if diameter_mm <= 20 else "large"
