"""The family registry: every family's presets make valid configs, a new family is one declaration
plus one registry line, and nothing outside the registry and the family files branches on a name."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from pathosynth import models
from pathosynth.config import PRESETS, check_config, make_config
from pathosynth.data.dataset import Dataset
from pathosynth.generate import generate
from pathosynth.models.dcgan import DCGANConfig, DCGANGenerator, _discriminator, _generator_kwargs
from pathosynth.models.family import Family, Loss
from pathosynth.training.adversarial import ImageGANStep
from pathosynth.training.loop import train

SOURCE = Path(models.__file__).resolve().parents[1]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", sorted(models.FAMILIES))
def test_every_family_preset_is_a_valid_config(name, preset):
    family = models.FAMILIES[name]
    config = make_config(name, preset, data="unused", boxes=True if family.boxes == "required" else None)
    check_config(config)
    assert config.model == name and config.preset == preset


# The docs' worked example (docs/architecture.md): a least-squares GAN on the DCGAN networks is this
# declaration in its own file plus one line in models.FAMILIES.
@dataclass
class LSGANConfig(DCGANConfig):
    loss: Loss = "least-squares"


LSGAN = Family(
    name="lsgan", spatial_dims=2, config=LSGANConfig, step=ImageGANStep, generator_class=DCGANGenerator,
    generator_kwargs=_generator_kwargs, discriminator=_discriminator,
    presets={"small": dict(resolution=64, width=32, batch=32, steps=1000)})


def test_a_new_family_is_one_declaration_and_one_registry_line(monkeypatch, tmp_path, tiny_brain):
    monkeypatch.setitem(models.FAMILIES, "lsgan", LSGAN)
    torch.set_num_threads(1)
    run = train(make_config("lsgan", "tiny", data=str(tiny_brain)), tmp_path / "run", progress=False)
    out = generate(run, 4, tmp_path / "synthetic", seed=1, progress=False)
    assert len(Dataset.load(out).samples) == 4
    first = (run / "stats.jsonl").read_text().splitlines()[0]
    assert '"loss_d"' in first
    assert json.loads((run / "config.json").read_text())["config"]["family"]["loss"] == "least-squares"


def test_no_module_outside_the_registry_compares_a_family_name():
    names = "|".join(re.escape(name) for name in models.FAMILIES)
    quoted = rf"[\"'](?:{names})[\"']"
    pattern = re.compile(rf"(?:==|!=)\s*{quoted}|{quoted}\s*(?:==|!=)|\bin\s*[(\[{{][^)\]}}]*{quoted}"
                         r"|(?<![-\w])model\s*(?:==|!=)|(?<![-\w])model\s+(?:not\s+)?in\s*[(\[{]")
    offenders = [f"{path.relative_to(SOURCE)}:{number}" for path in SOURCE.rglob("*.py")
                 if "models" not in path.relative_to(SOURCE).parts
                 for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, f"family names compared outside models/: {offenders}"
    assert pattern.search('if payload.get("model") != "mcgan3d":')  # the forms it must catch
    assert pattern.search("if config.model in ('dcgan', 'wgan'):")


def test_the_steps_and_the_run_do_not_import_the_loop_that_drives_them():
    """The loop calls a family's step through the run; neither imports the loop back."""
    import subprocess
    import sys

    code = ("import sys; import pathosynth.models.mcgan3d.step, pathosynth.training.adversarial, "
            "pathosynth.training.run; "
            "assert 'pathosynth.training.loop' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
