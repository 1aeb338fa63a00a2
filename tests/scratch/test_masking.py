"""The padded tagging task: data, the correct mask, the masked loss, the causal tagger."""
import pytest
import torch
from torch.nn import functional

from helpers.scratch import masking


def test_sequences_end_with_one_end_token_then_padding_and_carry_the_stated_tags():
    x, y = masking.padded_sequences(200, max_length=12, seed=1)
    assert x.shape == y.shape == (200, 12)
    lengths = masking.real_tokens(x).sum(1)
    assert lengths.min() >= 6 and lengths.max() <= 12
    for row in range(20):
        length = int(lengths[row])
        tokens, tags = x[row].tolist(), y[row].tolist()
        assert all(1 <= t < masking.VOCABULARY for t in tokens[:length - 1])
        assert tokens[length - 1:] == [masking.EOS] * (12 - length + 1)
        assert tags[length - 1] == masking.END_TAG and tags[length:] == [0] * (12 - length)
        previous = [0] + tokens[:length - 2]
        assert tags[:length - 1] == [(t + p) % 7 for t, p in zip(tokens[:length - 1], previous)]
    assert torch.equal(masking.padded_sequences(5, seed=3)[0], masking.padded_sequences(5, seed=3)[0])
    for bad in ({"n": 0}, {"n": 3, "max_length": 5}):
        with pytest.raises(ValueError):
            masking.padded_sequences(**bad)


def test_real_tokens_keeps_everything_up_to_and_including_the_first_end_token():
    x = torch.tensor([[5, 3, 0, 0, 0], [2, 0, 7, 0, 0], [1, 2, 3, 4, 5]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(masking.real_tokens(x), expected)


def test_masked_cross_entropy_matches_torch_ignore_index():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, generator=generator)
    y = torch.randint(0, 4, (3, 5), generator=generator)
    mask = torch.rand(3, 5, generator=generator) > 0.4
    expected = functional.cross_entropy(logits.flatten(0, 1), torch.where(mask, y, -100).flatten())
    assert masking.masked_cross_entropy(logits, y, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_tagger_only_looks_back():
    torch.manual_seed(0)
    model = masking.CausalTagger().eval()
    x, _ = masking.padded_sequences(4, max_length=10)
    out = model(x)
    assert out.shape == (4, 10, masking.TAGS)
    changed = x.clone()
    changed[:, 6:] = 3
    assert torch.allclose(model(changed)[:, :6], out[:, :6])
    assert not torch.allclose(model(changed)[:, 6:], out[:, 6:])
    padded = torch.cat([x, torch.zeros(4, 5, dtype=torch.long)], 1)
    assert torch.allclose(model(padded)[:, :10], out, atol=1e-6)
    with pytest.raises(ValueError, match=r"^dim must"):
        masking.CausalTagger(dim=0)
    with pytest.raises(ValueError, match=r"^hidden must"):
        masking.CausalTagger(hidden=0)


def test_tagging_splits_have_the_requested_sizes():
    data = masking.tagging_splits(30, 10, 5, max_length=8, seed=2)
    assert data.sizes() == {"train": 30, "val": 10, "test": 5}
    assert data.x_train.shape == (30, 8) and data.n_classes == masking.TAGS
    x, _ = masking.padded_sequences(45, 8, seed=2)
    assert torch.equal(torch.cat([data.x_train, data.x_val, data.x_test]), x)
    for bad in ({"n_train": 0}, {"n_val": 0}, {"n_test": 0}):
        with pytest.raises(ValueError):
            masking.tagging_splits(**bad)


def test_defaults_of_the_task_and_the_tagger():
    x, _ = masking.padded_sequences(40)
    assert x.shape == (40, 16) and torch.equal(x, masking.padded_sequences(40, 16, 0)[0])
    data = masking.tagging_splits()
    assert data.sizes() == {"train": 2000, "val": 500, "test": 500} and data.x_train.shape[1] == 16
    assert torch.equal(data.x_test, masking.padded_sequences(3000, 16, 0)[0][2500:])
    assert data.name == "tagging" and data.x_train.device.type == "cpu"
    tagger = masking.CausalTagger()
    assert tagger.embed.weight.shape == (masking.VOCABULARY, 16)
    assert [layer.out_features for layer in tagger.mlp if hasattr(layer, "out_features")] == [48, masking.TAGS]
    assert (masking.EOS, masking.VOCABULARY, masking.TAGS, masking.END_TAG) == (0, 16, 8, 7)
