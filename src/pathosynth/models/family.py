"""What a generator family declares, in its own file: its settings and presets, how its networks
are built, its conditioning and its own config checks. The registry (`models/__init__.py`) maps a
name to one `Family`; the config, the training loop and generation ask the family instead of
comparing its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

BoxUse = Literal["never", "optional", "required"]


def _nothing_to_check(config: Any) -> None:
    return None


@dataclass(frozen=True)
class Family:
    name: str
    spatial_dims: int  # 2: images; 3: VOIs
    settings: dict[str, Any]  # the family's training settings, under every preset
    presets: dict[str, dict[str, Any]]  # extra values of "paper", "small", "tiny"
    generator_class: type
    generator_kwargs: Callable[[Any, int, int], dict]  # (config, channels, classes) -> the rebuild recipe
    discriminator: Callable[[Any, int, int], Any]  # (config, channels, classes) -> the network
    boxes: BoxUse = "never"  # conditioning on a box image
    latent: bool = True  # images drawn from a latent vector (latent-dim must be >= 1)
    grows: bool = False  # progressive growing: the loop runs its stages and fade-ins
    options: frozenset[str] = frozenset()  # config fields only this family reads (e.g. spectral_norm)
    box_presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra values with --boxes
    check: Callable[[Any], None] = _nothing_to_check  # refusals of this family's own settings

    def preset_values(self, preset: str, common: dict[str, Any], boxes: bool) -> dict[str, Any]:
        """Settings, then the preset's shared values, then this family's, then its box preset."""
        values = {**self.settings, **common, **self.presets.get(preset, {})}
        if boxes:
            values.update(self.box_presets.get(preset, {}))
        return values
