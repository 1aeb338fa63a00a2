"""helpers.scratch.speculative: always the target's greedy tokens; acceptance and passes in the extreme cases."""
import pytest
import torch

from helpers.scratch import decoder, speculative

TARGET = dict(vocab=13, d_model=16, n_heads=4, n_layers=2, max_len=64)
DRAFT = dict(vocab=13, d_model=8, n_heads=2, n_layers=1, max_len=64)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lookahead", [1, 3, 5])
def test_speculative_tokens_are_the_targets_greedy_tokens(seed, lookahead):
    target, draft = decoder.tiny_decoder(seed=seed, **TARGET), decoder.tiny_decoder(seed=seed + 10, **DRAFT)
    prompt = torch.randint(0, 13, (1, 1 + seed * 2), generator=torch.Generator().manual_seed(seed))
    result = speculative.speculative_generate(target, draft, prompt, 20, lookahead)
    assert torch.equal(result.tokens, decoder.generate(target, prompt, 20).tokens)
    assert result.proposed == lookahead * result.target_passes
    assert 0 <= result.accepted <= result.proposed
    assert result.target_passes * (lookahead + 1) >= 20 and result.accepted + result.target_passes >= 20


def biased(sizes, token, seed):
    model = decoder.tiny_decoder(seed=seed, **sizes)
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.bias[token] = 100.0
    return model


def test_a_draft_that_is_the_target_is_always_accepted():
    target = decoder.tiny_decoder(seed=1, **TARGET)
    result = speculative.speculative_generate(target, target, torch.tensor([[2, 3]]), 20, 4)
    assert result.accepted == result.proposed and result.acceptance_rate == 1.0
    assert result.target_passes == 4                               # 5 tokens per pass: 4 guesses and a bonus
    assert torch.equal(result.tokens, decoder.generate(target, torch.tensor([[2, 3]]), 20).tokens)


def test_a_draft_that_always_disagrees_costs_one_pass_per_token():
    target, draft = biased(TARGET, 1, 0), biased(DRAFT, 0, 1)
    result = speculative.speculative_generate(target, draft, torch.tensor([[5]]), 12, 3)
    assert result.accepted == 0 and result.acceptance_rate == 0.0 and result.target_passes == 12
    assert torch.equal(result.tokens, torch.tensor([[5] + [1] * 12]))


def test_acceptance_rate_property():
    assert speculative.Speculation(torch.zeros(1, 3), 2, 8, 6).acceptance_rate == 0.75


def test_validation_names_the_argument():
    target, draft = decoder.tiny_decoder(seed=0, **TARGET), decoder.tiny_decoder(seed=1, **DRAFT)
    with pytest.raises(ValueError, match="lookahead"):
        speculative.speculative_generate(target, draft, torch.tensor([[1]]), 5, 0)
    with pytest.raises(ValueError, match="prompt"):
        speculative.speculative_generate(target, draft, torch.tensor([[1], [2]]), 5)
    with pytest.raises(ValueError, match="prompt"):
        speculative.speculative_generate(target, draft, torch.tensor([1, 2]), 5)
    with pytest.raises(ValueError, match="draft"):
        speculative.speculative_generate(target, decoder.tiny_decoder(seed=0, **{**DRAFT, "vocab": 7}),
                                         torch.tensor([[1]]), 5)
    with pytest.raises(ValueError, match="n_new"):
        speculative.speculative_generate(target, draft, torch.tensor([[1, 2]]), 60, 4)
    speculative.speculative_generate(target, draft, torch.tensor([[1, 2]]), 58, 4)


def test_messages_and_bounds():
    target, draft = decoder.tiny_decoder(seed=0, **TARGET), decoder.tiny_decoder(seed=1, **DRAFT)
    with pytest.raises(ValueError, match=r"^lookahead must be an integer in \[1, 64\]"):
        speculative.speculative_generate(target, draft, torch.tensor([[1]]), 5, 65)
    with pytest.raises(ValueError, match=r"^prompt must be a tensor of token ids of shape \(1, length >= 1\)"):
        speculative.speculative_generate(target, draft, torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=r"^prompt must be a tensor"):
        speculative.speculative_generate(target, draft, torch.zeros(1, 2), 5)
    with pytest.raises(ValueError, match=r"^draft must share the target's vocabulary of 13 tokens, got 7$"):
        speculative.speculative_generate(target, decoder.tiny_decoder(seed=0, **{**DRAFT, "vocab": 7}),
                                         torch.tensor([[1]]), 5)
    with pytest.raises(ValueError, match=r"^n_new must be an integer in \[1, 58\]"):
        speculative.speculative_generate(target, draft, torch.tensor([[1, 2]]), 0, 4)
    short = decoder.tiny_decoder(seed=1, **{**DRAFT, "max_len": 20})
    with pytest.raises(ValueError, match=r"^n_new must be an integer in \[1, 14\]"):
        speculative.speculative_generate(target, short, torch.tensor([[1, 2]]), 15, 4)
    long = {**TARGET, "max_len": 128}
    model = decoder.tiny_decoder(seed=0, **long)
    result = speculative.speculative_generate(model, model, torch.tensor([[1]]), 63, 64)
    assert result.tokens.shape == (1, 64) and result.target_passes == 1 and result.proposed == 64
