"""Presets carry the papers' settings (METHODS.md), and impossible configs are refused in one sentence."""

import pytest

from pathosynth.config import MODELS, PRESETS, TrainConfig, make_config
from pathosynth.errors import UserError


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_model_has_every_preset_and_it_round_trips_through_json(model, preset):
    config = make_config(model, preset)
    assert config.model == model and config.preset == preset
    assert TrainConfig.from_json(config.to_json()) == config


def test_paper_presets_hold_the_papers_numbers():
    dcgan = make_config("dcgan", "paper")  # thesis section 3
    assert (dcgan.batch, dcgan.optimizer, dcgan.lr_g, dcgan.lr_d, dcgan.family.width) == (64, "adam", 2e-4, 2e-4, 32)
    wgan = make_config("wgan", "paper")
    assert (wgan.batch, wgan.optimizer, wgan.lr_d, wgan.family.clip, wgan.family.loss) == (
        64, "rmsprop", 5e-5, 0.01, "wasserstein")
    assert wgan.family.critic_steps == 5
    pggan = make_config("pggan", "paper")  # two-step GAN: batch 16, Adam 1e-3, WGAN-GP, crop 0-15 px
    assert (pggan.resolution, pggan.batch, pggan.lr_g, pggan.family.loss, pggan.family.random_crop) == (
        256, 16, 1e-3, "wgan-gp", 15)
    assert pggan.classes == "separate" and pggan.family.drift_weight == 1e-3 and pggan.family.gp_weight == 10.0
    cpggan = make_config("pggan", "paper", boxes=True)  # CPGGAN: batch 4, Adam 2e-4, 3M steps
    assert (cpggan.batch, cpggan.lr_g, cpggan.steps, cpggan.boxes) == (4, 2e-4, 3_000_000, True)


def test_overrides_win_over_the_preset_and_none_keeps_it():
    config = make_config("dcgan", "small", batch=7, steps=None)
    assert config.batch == 7 and config.steps == make_config("dcgan", "small").steps


@pytest.mark.parametrize("model, overrides, needle", [
    ("dcgan", {"resolution": 48}, "power of two"),
    ("unet-cgan", {"boxes": False}, "needs --boxes"),
    ("unet-cgan", {"classes": "conditional"}, "boxes only"),
    ("dcgan", {"boxes": True}, "no box conditioning"),
    ("dcgan", {"label": "tumour"}, "--classes"),
    ("dcgan", {"batch": 0}, "batch"),
    ("dcgan", {"diffaugment": "rotate"}, "rotate"),
    ("pggan", {"spectral_norm": True}, "DCGAN/WGAN option"),
    ("mcgan3d", {"diffaugment": "translation"}, "has no such setting"),
    ("dcgan", {"loss": "hinge"}, "unknown --loss 'hinge'"),
    ("dcgan", {"classes": "all"}, "unknown --classes 'all'"),
])
def test_bad_configs_end_in_one_clear_error(model, overrides, needle):
    with pytest.raises(UserError, match=needle):
        make_config(model, "tiny", **overrides)


def test_unknown_model_or_preset():
    with pytest.raises(UserError, match="unknown model 'gan'"):
        make_config("gan")
    with pytest.raises(UserError, match="unknown preset"):
        make_config("dcgan", "huge")


def test_a_run_written_before_the_families_had_config_sections_still_reads():
    """config.json of older runs holds one flat dict: the family's fields among the shared ones."""
    config = make_config("pggan", "small", boxes=True)
    flat = {k: v for k, v in config.to_json().items() if k != "family"} | config.to_json()["family"]
    assert TrainConfig.from_json(flat) == config
