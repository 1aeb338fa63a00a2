import numpy as np
import pytest
import torch

from helpers.validation import check_choice, check_float, check_int, check_shape


def test_check_int():
    assert check_int("depth", 3, 1, 5) == 3
    assert check_int("depth", np.int64(2), 1, 5) == 2
    for bad in (0, 6, 2.5, True, "3", None):
        with pytest.raises(ValueError, match=r"depth must be an integer in \[1, 5\]"):
            check_int("depth", bad, 1, 5)


def test_check_float():
    assert check_float("lr", 0.1, 0.0, 1.0, lo_open=True) == 0.1
    for bad in (0.0, 1.5, float("nan"), "x", None):
        with pytest.raises(ValueError, match=r"lr must be a number in \(0.0, 1.0\]"):
            check_float("lr", bad, 0.0, 1.0, lo_open=True)


def test_check_choice_and_shape():
    assert check_choice("activation", "relu", ["relu", "tanh"]) == "relu"
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'tanh'\], got 'elu'"):
        check_choice("activation", "elu", ["relu", "tanh"])
    check_shape("x", torch.zeros(3, 4), (None, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(any, 4\), got \(3, 5\)"):
        check_shape("x", torch.zeros(3, 5), (None, 4))
