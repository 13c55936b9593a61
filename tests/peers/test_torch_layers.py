"""chainrule's convolution, pooling, normalisation and embedding layers against PyTorch's: the
torch layer's state_dict loaded by name into the chainrule one, then the same outputs and the
same gradients (of the input and of every parameter) to 1e-10 in float64 and 1e-5 in float32.
Run by ``make test-peers``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import chainrule as cr  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-5}
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}


def _pair(
    make_torch: Callable[[], Any], make_ours: Callable[[str], Any], dtype: str
) -> tuple[Any, Any]:
    torch.manual_seed(0)
    theirs = make_torch().to(TORCH_DTYPE[dtype])
    ours = make_ours(dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return theirs, ours


def _compare(theirs: Any, ours: Any, x: np.ndarray, dtype: str, train: bool = True) -> None:
    theirs.train(train)
    ours.train(train)
    tol = TOL[dtype]
    xt = torch.tensor(x, dtype=TORCH_DTYPE[dtype], requires_grad=True)
    xo = cr.tensor(x.astype(dtype), requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    w = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(dtype)
    (yt * torch.tensor(w)).sum().backward()
    (yo * w).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(
            params[name].grad.numpy(), p.grad.numpy(), rtol=tol, atol=tol, err_msg=name
        )
    ours_state = ours.state_dict()
    for name, value in theirs.state_dict().items():  # buffers moved the same way
        np.testing.assert_allclose(ours_state[name], value.numpy(), rtol=tol, atol=tol)


RNG = np.random.default_rng(0)
LAYERS = {
    "conv1d": (lambda: torch.nn.Conv1d(3, 4, 5, stride=2, padding=2),
               lambda d: cr.nn.Conv1d(3, 4, 5, stride=2, padding=2, dtype=d), (4, 3, 20)),
    "conv1d same dilated": (lambda: torch.nn.Conv1d(2, 2, 4, padding="same", dilation=2),
                            lambda d: cr.nn.Conv1d(2, 2, 4, padding="same", dilation=2, dtype=d),
                            (3, 2, 11)),
    "conv2d": (lambda: torch.nn.Conv2d(3, 8, 3, padding=1),
               lambda d: cr.nn.Conv2d(3, 8, 3, padding=1, dtype=d), (2, 3, 9, 7)),
    "conv2d groups stride": (lambda: torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), groups=2),
                             lambda d: cr.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), groups=2,
                                                    dtype=d), (2, 4, 8, 6)),
    "conv_transpose2d": (lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                          output_padding=1, groups=2),
                         lambda d: cr.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                         output_padding=1, groups=2, dtype=d),
                         (2, 4, 5, 4)),
    "conv_transpose1d": (lambda: torch.nn.ConvTranspose1d(3, 2, 4, stride=2, dilation=2),
                         lambda d: cr.nn.ConvTranspose1d(3, 2, 4, stride=2, dilation=2, dtype=d),
                         (2, 3, 7)),
    "max_pool2d": (lambda: torch.nn.MaxPool2d(3, stride=2, padding=1),
                   lambda d: cr.nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 8, 7)),
    "avg_pool2d": (lambda: torch.nn.AvgPool2d(2, padding=1, count_include_pad=False),
                   lambda d: cr.nn.AvgPool2d(2, padding=1, count_include_pad=False), (2, 3, 6, 5)),
    "max_pool1d": (lambda: torch.nn.MaxPool1d(2), lambda d: cr.nn.MaxPool1d(2), (2, 3, 9)),
    "avg_pool1d": (lambda: torch.nn.AvgPool1d(3, stride=2), lambda d: cr.nn.AvgPool1d(3, stride=2),
                   (2, 3, 9)),
    "adaptive_avg_pool2d": (lambda: torch.nn.AdaptiveAvgPool2d((3, 4)),
                            lambda d: cr.nn.AdaptiveAvgPool2d((3, 4)), (2, 3, 7, 9)),
    "adaptive_avg_pool1d": (lambda: torch.nn.AdaptiveAvgPool1d(4),
                            lambda d: cr.nn.AdaptiveAvgPool1d(4), (2, 3, 10)),
    "batch_norm1d": (lambda: torch.nn.BatchNorm1d(3), lambda d: cr.nn.BatchNorm1d(3, dtype=d),
                     (8, 3, 5)),
    "batch_norm2d": (lambda: torch.nn.BatchNorm2d(3, momentum=0.3),
                     lambda d: cr.nn.BatchNorm2d(3, momentum=0.3, dtype=d), (4, 3, 5, 4)),
    "layer_norm": (lambda: torch.nn.LayerNorm((4, 5)), lambda d: cr.nn.LayerNorm((4, 5), dtype=d),
                   (3, 4, 5)),
    "group_norm": (lambda: torch.nn.GroupNorm(2, 4), lambda d: cr.nn.GroupNorm(2, 4, dtype=d),
                   (3, 4, 6)),
}  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_agrees_with_pytorch(name: str, dtype: str) -> None:
    make_torch, make_ours, shape = LAYERS[name]
    theirs, ours = _pair(make_torch, make_ours, dtype)
    x = RNG.standard_normal(shape)
    _compare(theirs, ours, x, dtype)
    if "batch_norm" in name:  # and in eval mode, with the running statistics just updated
        for p in list(theirs.parameters()) + list(ours.parameters()):
            p.grad = None
        _compare(theirs, ours, RNG.standard_normal(shape), dtype, train=False)


def test_embedding_agrees_with_pytorch() -> None:
    theirs, ours = _pair(
        lambda: torch.nn.Embedding(7, 3, padding_idx=2),
        lambda d: cr.nn.Embedding(7, 3, padding_idx=2),
        "float64",
    )
    idx = np.array([[2, 0, 6], [2, 2, 5]])
    yt, yo = theirs(torch.tensor(idx)), ours(idx)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy())
    w = RNG.standard_normal(yo.shape)
    (yt * torch.tensor(w)).sum().backward()
    (yo * w).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy())


def test_a_small_convnet_state_dict_moves_between_the_two() -> None:
    def torch_net() -> Any:
        return torch.nn.Sequential(
            torch.nn.Conv1d(1, 8, 5, padding=2), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
            torch.nn.MaxPool1d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 20, 10),
        )  # fmt: skip

    def our_net(dtype: str) -> Any:
        return cr.nn.Sequential(
            cr.nn.Conv1d(1, 8, 5, padding=2, dtype=dtype), cr.nn.BatchNorm1d(8, dtype=dtype),
            cr.nn.ReLU(), cr.nn.MaxPool1d(2), cr.nn.Flatten(),
            cr.nn.Linear(8 * 20, 10, dtype=dtype),
        )  # fmt: skip

    for dtype in ("float64", "float32"):
        theirs, ours = _pair(torch_net, our_net, dtype)
        _compare(theirs, ours, RNG.standard_normal((6, 1, 40)), dtype)
