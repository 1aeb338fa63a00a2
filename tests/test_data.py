
import numpy as np
import pytest
import torch

from helpers import data


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(4), [100, 200, 300, 400])
    train, val, test = data.stratified_split(y, (0.6, 0.2, 0.2), seed=0)
    assert len(train) + len(val) + len(test) == len(y)
    assert len(set(train) | set(val) | set(test)) == len(y)
    for part in (train, val, test):
        shares = np.bincount(y[part], minlength=4) / len(part)
        np.testing.assert_allclose(shares, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    with pytest.raises(ValueError, match="fractions must be positive and sum to 1"):
        data.stratified_split(y, (0.5, 0.2), seed=0)


def test_digits_are_standardised_on_train_only():
    d = data.digits(device="cpu")
    assert d.n_features == 64 and d.n_classes == 10
    assert sum(d.sizes().values()) == 1797
    assert d.x_train.mean().abs() < 1e-4
    assert d.x_val.dtype == torch.float32 and d.y_val.dtype == torch.long


def test_mnist1d_is_generated_offline_without_touching_cwd_or_numpy_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    d = data.mnist1d(device="cpu")
    assert np.random.rand() == expected
    assert list(tmp_path.iterdir()) == []
    assert d.sizes() == {"train": 3200, "val": 800, "test": 1000}
    assert d.n_features == 40 and d.n_classes == 10


def test_mnist1d_small_training_set_is_stratified():
    d = data.mnist1d(n_train=200, device="cpu")
    assert len(d.y_train) == 200
    assert torch.bincount(d.y_train, minlength=10).min() >= 15
    with pytest.raises(ValueError, match=r"n_train must be an integer in \[20, 3200\]"):
        data.mnist1d(n_train=10_000, device="cpu")


def test_synthetic_sets():
    s = data.spirals(n=200, device="cpu")
    assert s.n_classes == 2 and s.n_features == 2 and sum(s.sizes().values()) == 200
    m = data.moons(n=100, device="cpu")
    assert m.x_train.shape[1] == 2
    a = data.ill_conditioned_quadratic(kappa=100.0, dim=5, seed=1)
    eig = torch.linalg.eigvalsh(a)
    assert torch.allclose(eig.max() / eig.min(), torch.tensor(100.0, dtype=eig.dtype))
    x, y = data.remember_first(n=50, length=10, device="cpu")
    assert x.shape == (50, 10, 1) and torch.equal(y, (x[:, 0, 0] > 0).long())


@pytest.mark.parametrize("call, message", [
    (lambda: data.spirals(n=5), r"n must be an integer in \[20, 200000\]"),
    (lambda: data.spirals(noise=-1), r"noise must be a number in \[0.0, 2.0\]"),
    (lambda: data.digits(val_fraction=0.9), r"val_fraction must be a number in \(0.0, 0.5\]"),
    (lambda: data.ill_conditioned_quadratic(kappa=0.5), r"kappa must be a number in \[1.0"),
    (lambda: data.remember_first(length=0), r"length must be an integer in \[1, 10000\]"),
])
def test_bad_arguments_name_the_parameter_and_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_feature_constant_in_training_is_not_blown_up():
    d = data.digits(device="cpu")
    for x in (d.x_val, d.x_test):
        assert x.abs().max() < 100
