"""The 2D lesion painter's step: paint a real lesion's tissue back from its label map and its
surroundings (pix2pix-style, on patches at the slices' own pixel size; the patches, healthy holes
included, come from training/lesion_patches.py). The painter sees the patch outside the hole, the
hole, the lesion's labels and noise. What is judged is exactly what
generation writes: the feathered composite. Losses: L1 in the hole (label -> tissue is nearly
deterministic, so L1 converges in minutes) and a weak hinge term from a PatchGAN on (patch, hole,
labels) after the same random shift for real and composite (DiffAugment translation), for grain.
Every random draw comes from the torch RNG the checkpoint keeps, so a resumed run continues exactly.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from pathosynth.training.lesion_patches import LesionPatches, PaintsLesions, painter_inputs
from pathosynth.training.step import GANStep


class InpaintStep(PaintsLesions, GANStep):
    loss_names = ("loss_d", "loss_g", "adversarial_g", "l1")
    classes: list[str] = []

    def __init__(self, config, family, data, processes, sampler):
        self.labels = list(data.labels)
        self.num_classes = len(self.labels)  # GANStep builds the networks with one channel per label
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.patches = LesionPatches(data, config, self.device)

    @property
    def passes_per_step(self) -> int:
        return 2  # one discriminator update, then one painter update

    def __call__(self, step: int) -> torch.Tensor:
        s = self.settings
        patch, weight, labels = self.patches.draw(self.sampler.next_indices().tolist())
        hole = (weight > 0).float()
        with self.autocast:
            painted = self.generator_ddp(painter_inputs(patch, weight, labels, torch.randn_like(patch))).float()
        composite = weight * painted + (1 - weight) * patch
        shifts = [tuple(int(v) for v in torch.randint(-s.translation, s.translation + 1, (2,))) for _ in range(3)]

        def judged(image: torch.Tensor, shift: tuple[int, ...]) -> torch.Tensor:
            return self.discriminator(torch.roll(torch.cat([image, hole, labels], 1), shift, (2, 3)))

        self.discriminator.requires_grad_(True)
        loss_d = F.relu(1 - judged(patch, shifts[0])).mean() + F.relu(1 + judged(composite.detach(), shifts[1])).mean()
        self.update_discriminator(loss_d)
        self.discriminator.requires_grad_(False)
        adversarial = -judged(composite, shifts[2]).mean()
        l1 = (hole * (painted - patch).abs()).sum() / hole.sum().clamp(min=1)
        loss_g = s.adversarial_weight * adversarial + s.l1_weight * l1
        self.update_generator(loss_g)
        return torch.stack([loss_d, loss_g, adversarial, l1]).detach().float()
