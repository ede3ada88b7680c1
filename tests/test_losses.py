"""GAN losses against independent formulations: torch's BCE and MSE losses, and closed forms."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from pathosynth import losses

scores = st.lists(st.floats(-30, 30), min_size=1, max_size=16).map(lambda v: torch.tensor(v, dtype=torch.float64))


@settings(max_examples=50, deadline=None)
@given(real=scores, fake=scores)
def test_nonsaturating_equals_binary_cross_entropy(real, fake):
    expected_d = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
        F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    torch.testing.assert_close(losses.nonsaturating_d(real, fake), expected_d)
    torch.testing.assert_close(losses.nonsaturating_g(fake),
                               F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))


@settings(max_examples=50, deadline=None)
@given(real=scores, fake=scores)
def test_least_squares_and_wasserstein(real, fake):
    torch.testing.assert_close(losses.least_squares_d(real, fake),
                               0.5 * (F.mse_loss(real, torch.ones_like(real))
                                      + F.mse_loss(fake, torch.zeros_like(fake))))
    torch.testing.assert_close(losses.least_squares_g(fake), 0.5 * F.mse_loss(fake, torch.ones_like(fake)))
    torch.testing.assert_close(losses.wasserstein_d(real, fake), fake.mean() - real.mean())
    torch.testing.assert_close(losses.wasserstein_g(fake), -fake.mean())
    torch.testing.assert_close(losses.drift_penalty(real), (real * real).mean())


@pytest.mark.parametrize("shape", [(4, 1, 8, 8), (3, 2, 4, 4, 4)])
def test_gradient_penalty_of_a_linear_critic_is_closed_form(shape):
    # f(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 whatever the mix
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(shape[1:], generator=generator, dtype=torch.float64)
    real = torch.randn(shape, generator=generator, dtype=torch.float64)
    fake = torch.randn(shape, generator=generator, dtype=torch.float64)
    penalty = losses.gradient_penalty(lambda x: (x * weight).flatten(1).sum(1), real, fake, generator=generator)
    torch.testing.assert_close(penalty, (weight.norm() - 1) ** 2)


def test_gradient_penalty_passes_conditions_and_backpropagates_to_the_critic():
    critic = torch.nn.Linear(6, 1).double()
    seen = []

    def conditioned(x, label):
        seen.append(label)
        return critic(torch.cat([x.flatten(1), label], dim=1))

    real, fake = torch.randn(5, 1, 2, 2, dtype=torch.float64), torch.randn(5, 1, 2, 2, dtype=torch.float64)
    label = torch.ones(5, 2, dtype=torch.float64)
    penalty = losses.gradient_penalty(conditioned, real, fake, label=label)
    penalty.backward()
    assert seen[0] is label
    image_weights = critic.weight.detach()[0, :4].double()
    torch.testing.assert_close(penalty.detach(), (image_weights.norm() - 1) ** 2)
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_gradient_penalty_hands_keyword_conditions_to_a_pggan_critic():
    from pathosynth.data.boxes import box_image
    from pathosynth.models.pggan import PGGANDiscriminator

    critic = PGGANDiscriminator(16, width=4, max_width=8, num_classes=2, box_condition=True)
    real, fake = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    boxes = torch.from_numpy(box_image([[[2, 2, 9, 9]], [], [[0, 0, 16, 16]]], 16))
    penalty = losses.gradient_penalty(critic, real, fake, labels=torch.tensor([0, 1, 1]), boxes=boxes,
                                      stage=1, alpha=0.5)
    assert penalty.dim() == 0 and torch.isfinite(penalty)
    penalty.backward()
    assert all(p.grad is not None for p in critic.from_rgb[1].parameters())
