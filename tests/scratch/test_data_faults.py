"""Each data fault changes exactly what it says, and never the test split."""
import pytest
import torch
from tiny_pipelines import blobs

from helpers.scratch import data_faults


def test_shuffle_labels_permutes_training_labels_only():
    data = blobs()
    shuffled = data_faults.shuffle_labels(data, seed=1)
    assert torch.equal(shuffled.x_train, data.x_train) and torch.equal(shuffled.y_val, data.y_val)
    assert torch.equal(shuffled.y_train.sort().values, data.y_train.sort().values)
    assert (shuffled.y_train != data.y_train).float().mean() > 0.4
    assert torch.equal(data_faults.shuffle_labels(data, 1).y_train, shuffled.y_train)


def test_starve_class_keeps_the_first_examples_of_one_class():
    data = blobs()
    starved = data_faults.starve_class(data, label=1, keep=3)
    assert (starved.y_train == 1).sum() == 3
    first_three = torch.nonzero(data.y_train == 1)[:3, 0]
    assert torch.equal(starved.x_train[starved.y_train == 1], data.x_train[first_three])
    for label in (0, 2):
        assert torch.equal(starved.x_train[starved.y_train == label], data.x_train[data.y_train == label])
    assert torch.equal(starved.x_test, data.x_test)
    with pytest.raises(ValueError, match=r"^label must"):
        data_faults.starve_class(data, label=3)


def test_leak_replaces_a_share_of_validation_with_jittered_training_rows():
    data = blobs()
    leaked = data_faults.leak_near_duplicates(data, fraction=0.25, noise=0.01, seed=2)
    replaced = (leaked.x_val != data.x_val).any(1)
    assert replaced.sum() == 15                                       # 25% of 60
    distances = torch.cdist(leaked.x_val[replaced], data.x_train)
    nearest = distances.argmin(1)
    assert distances.min(1).values.max() < 0.1
    assert torch.equal(leaked.y_val[replaced], data.y_train[nearest])
    assert torch.equal(leaked.y_val[~replaced], data.y_val[~replaced]) and torch.equal(leaked.x_test, data.x_test)
    assert torch.equal(data_faults.leak_near_duplicates(data, 0.0).x_val, data.x_val)
    with pytest.raises(ValueError, match=r"^fraction must"):
        data_faults.leak_near_duplicates(data, 1.5)
    with pytest.raises(ValueError, match=r"^noise must"):
        data_faults.leak_near_duplicates(data, 0.5, noise=-1.0)


def test_noisier_sensor_adds_noise_of_the_given_size_to_validation_only():
    x = torch.zeros(5000, 4)
    assert (data_faults.noisier_sensor(x, 0.5, seed=3) - x).std().item() == pytest.approx(0.5, rel=0.03)
    data = blobs()
    shifted = data_faults.shift_validation(data, 1.0, seed=3)
    assert torch.equal(shifted.x_train, data.x_train) and torch.equal(shifted.x_test, data.x_test)
    assert (shifted.x_val - data.x_val).std().item() == pytest.approx(1.0, rel=0.2)
    with pytest.raises(ValueError, match=r"^size must"):
        data_faults.noisier_sensor(x, -0.1)


def test_defaults_and_seeds_are_explicit():
    data = blobs()
    assert (data_faults.starve_class(data, label=2).y_train == 2).sum() == 3
    assert torch.equal(data_faults.shuffle_labels(data).y_train, data_faults.shuffle_labels(data, seed=0).y_train)
    assert not torch.equal(data_faults.shuffle_labels(data, seed=1).y_train, data_faults.shuffle_labels(data).y_train)
    leaked = data_faults.leak_near_duplicates(data, 0.5)
    assert torch.equal(leaked.x_val, data_faults.leak_near_duplicates(data, 0.5, noise=0.05, seed=0).x_val)
    x = torch.zeros(3, 2)
    expected = 0.7 * torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(data_faults.noisier_sensor(x, 0.7), expected)
    assert torch.equal(data_faults.noisier_sensor(x, 0.0, seed=5), x)
    assert torch.equal(data_faults.shift_validation(data, 0.7).x_val, data_faults.noisier_sensor(data.x_val, 0.7, 0))
    assert not torch.equal(data_faults.shift_validation(data, 0.7, seed=1).x_val,
                           data_faults.shift_validation(data, 0.7).x_val)
    with pytest.raises(ValueError, match=r"^seed must"):
        data_faults.shuffle_labels(data, seed=-1)
    with pytest.raises(ValueError, match=r"^keep must"):
        data_faults.starve_class(data, label=0, keep=-1)
