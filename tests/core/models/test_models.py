"""Backbones: shapes, registry, config round trip, input checks."""

from __future__ import annotations

import pytest
import torch

from core.models import FewShotModel, create_model, list_models, register_model


def test_list_models_holds_conv4_and_resnet12() -> None:
    assert {"conv4", "resnet12"} <= set(list_models())


def test_unknown_model_name_error_lists_the_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'conv5'.*conv4.*resnet12"):
        create_model("conv5")


@pytest.mark.parametrize(
    ("channels", "size", "width", "dim"), [(1, 28, 64, 64), (3, 84, 32, 32 * 25), (1, 16, 8, 8)]
)
def test_conv4_embedding_and_logit_shapes(channels: int, size: int, width: int, dim: int) -> None:
    model = create_model("conv4", in_channels=channels, n_way=7, image_size=size, width=width)
    x = torch.randn(3, channels, size, size)
    feats = model.features(x)
    assert model.embedding_dim == dim
    assert feats.shape == (3, dim)
    torch.testing.assert_close(model(x), model.head(feats))
    assert model(x).shape == (3, 7)


def test_conv4_has_four_conv_norm_relu_pool_blocks() -> None:
    assert create_model("conv4").config()["norm"] == "batch"  # the default, see docs/adr/0001
    model = create_model("conv4", width=16, norm="batch")
    convs = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    pools = [m for m in model.features.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(convs) == len(norms) == len(pools) == 4
    assert all(c.out_channels == 16 and c.kernel_size == (3, 3) for c in convs)
    assert all(not n.track_running_stats and n.running_mean is None for n in norms)  # per-task statistics


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_norm_choice_is_honoured(norm: str) -> None:
    model = create_model("conv4", width=16, norm=norm)
    kinds = {type(m).__name__ for m in model.features.modules()}
    expected = {"batch": "BatchNorm2d", "group": "GroupNorm", "none": None}[norm]
    assert expected is None or expected in kinds
    assert model.config()["norm"] == norm


def test_group_norm_predictions_do_not_depend_on_the_batch() -> None:
    model = create_model("conv4", width=8, norm="group").eval()
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(model(x)[:1], model(x[:1]))


def test_resnet12_is_small_and_pools_globally() -> None:
    model = create_model("resnet12", in_channels=3, n_way=5, image_size=84, width=8)
    assert model.embedding_dim == 64
    assert model.features(torch.randn(2, 3, 84, 84)).shape == (2, 64)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)  # any size >= 16 works
    with pytest.raises(ValueError, match="at least 16x16"):
        model.check_input(torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("name", ["conv4", "resnet12"])
def test_config_rebuilds_the_same_architecture(name: str) -> None:
    model = create_model(name, in_channels=3, n_way=4, image_size=32, width=8, norm="group")
    config = model.config()
    assert config["name"] == name and config["n_way"] == 4
    twin = create_model(**config)
    twin.load_state_dict(model.state_dict())  # same shapes, strict
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(twin(x), model(x))


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        create_model("conv4", norm="layer")
    with pytest.raises(ValueError, match="image_size >= 16"):
        create_model("conv4", image_size=8)
    with pytest.raises(TypeError):
        create_model("conv4", depth=3)


def test_check_input_names_the_problem() -> None:
    model = create_model("conv4", in_channels=1, image_size=28)
    assert isinstance(model, FewShotModel)
    with pytest.raises(ValueError, match="expects 1-channel images, got 3"):
        model.check_input(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match="expects 28x28 images, got 84x84"):
        model.check_input(torch.randn(1, 1, 84, 84))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model.check_input(torch.randn(28, 28))


def test_register_model_refuses_to_overwrite_a_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("conv4")(lambda **kw: torch.nn.Linear(1, 1))


def test_conv4_block_equals_conv_norm_relu_then_pool() -> None:
    """Pooling before the ReLU is an exact rewrite of the textbook order conv, norm, ReLU, maxpool."""
    torch.manual_seed(0)
    model = create_model("conv4", width=8, norm="batch").double()
    x = torch.randn(6, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    h = x
    for block in list(model.features)[:4]:
        conv, norm = block[0], block[1]
        h = torch.nn.functional.max_pool2d(torch.relu(norm(conv(h))), 2)
    textbook = model.head(h.flatten(1))
    torch.testing.assert_close(model(x), textbook, rtol=1e-12, atol=1e-12)
    g1 = torch.autograd.grad(model(x).sum(), x)[0]
    g2 = torch.autograd.grad(textbook.sum(), x)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
