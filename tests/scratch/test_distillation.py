"""helpers.scratch.distillation against the loss written out by hand, and a student that learns from logits."""
import pytest
import torch
from torch import nn
from torch.nn import functional

from helpers.scratch import distillation


def logits(seed=0, shape=(8, 5)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator) * 3


def test_loss_equals_the_formula_written_out():
    student, teacher = logits()
    labels = torch.arange(8) % 5
    for temperature, alpha in ((1.0, 1.0), (2.0, 0.3), (4.0, 0.9)):
        p_teacher = torch.softmax(teacher / temperature, -1)
        kl = (p_teacher * (p_teacher.log() - torch.log_softmax(student / temperature, -1))).sum(-1).mean()
        expected = alpha * temperature ** 2 * kl + (1 - alpha) * functional.cross_entropy(student, labels)
        got = distillation.distillation_loss(student, teacher, labels, temperature, alpha)
        assert torch.isclose(got, expected, atol=1e-5)


def test_limits():
    student, teacher = logits()
    labels = torch.arange(8) % 5
    assert distillation.distillation_loss(teacher, teacher, None, 3.0, 1.0).abs() < 1e-6
    assert distillation.distillation_loss(student, teacher, None, 3.0, 1.0) > 0
    assert torch.isclose(distillation.distillation_loss(student, teacher, labels, 3.0, 0.0),
                         functional.cross_entropy(student, labels))


def test_student_learns_from_teacher_logits_alone():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=generator)
    teacher_logits = x[:, :3] * 3
    y = teacher_logits.argmax(-1)
    torch.manual_seed(0)
    student = nn.Linear(6, 3)
    losses = distillation.train_student(student, x, y, teacher_logits, temperature=2.0, alpha=1.0, epochs=30, lr=0.05,
                                        batch_size=32, seed=1)
    assert len(losses) == 30 and losses[-1] < losses[0] / 3
    assert not student.training
    with torch.no_grad():
        assert (student(x).argmax(-1) == y).float().mean() > 0.9


def test_hard_label_training_is_reproducible():
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        student = nn.Linear(4, 3)
        runs.append(distillation.train_student(student, x, y, epochs=3, seed=5))
    assert runs[0] == runs[1] and runs[0][-1] < runs[0][0]


def test_validation_names_the_argument():
    student, teacher = logits()
    with pytest.raises(ValueError, match="labels"):
        distillation.distillation_loss(student, teacher, None, 3.0, 0.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation.distillation_loss(student, teacher, None, 0.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        distillation.distillation_loss(student, teacher, None, 1.0, 1.5)
    with pytest.raises(ValueError, match="share"):
        distillation.distillation_loss(student, teacher[:, :3], None, 1.0, 1.0)
    with pytest.raises(ValueError, match="same number of rows"):
        distillation.train_student(nn.Linear(6, 3), torch.randn(5, 6), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="epochs"):
        distillation.train_student(nn.Linear(6, 3), torch.randn(5, 6), torch.zeros(5, dtype=torch.long), epochs=0)


@pytest.mark.parametrize("call,message", [
    (lambda s, t: distillation.distillation_loss(s, t, None, 100.5, 1.0),
     r"^temperature must be a number in \(0.0, 100.0\]"),
    (lambda s, t: distillation.distillation_loss(s, t, None, 1.0, -0.1), r"^alpha must be a number in \[0.0, 1.0\]"),
    (lambda s, t: distillation.distillation_loss(s[0], t[0], None, 1.0, 1.0),
     r"^student_logits and teacher_logits must share a \(n, classes\) shape, got \(5,\) and \(5,\)$"),
    (lambda s, t: distillation.distillation_loss(s, t, None, 1.0, 0.5),
     r"^labels must be given when alpha < 1 \(the hard-label term needs them\)$"),
])
def test_loss_messages_name_the_argument_and_its_range(call, message):
    student, teacher = logits()
    with pytest.raises(ValueError, match=message):
        call(student, teacher)


def test_the_bounds_themselves_are_allowed():
    student, teacher = logits()
    assert torch.isfinite(distillation.distillation_loss(student, teacher, None, 100.0, 1.0))
    x, y = torch.randn(6, 2), torch.zeros(6, dtype=torch.long)
    assert len(distillation.train_student(nn.Linear(2, 2), x, y, epochs=1, lr=10.0, batch_size=1_000_000)) == 1
    for arguments, message in ((dict(epochs=10_001), r"^epochs must be an integer in \[1, 10000\]"),
                               (dict(batch_size=0), r"^batch_size must be an integer in \[1, 1000000\]"),
                               (dict(lr=10.5), r"^lr must be a number in \(0.0, 10.0\]"),
                               (dict(seed=-1), r"^seed must be an integer"),
                               (dict(teacher_logits=torch.zeros(5, 2)),
                                r"^x, y and teacher_logits must have the same")):
        with pytest.raises(ValueError, match=message):
            distillation.train_student(nn.Linear(2, 2), x, y, **arguments)


def test_one_epoch_sees_every_row_once_in_batches():
    x, y = torch.randn(10, 2), torch.tensor([0, 1] * 5)
    seen = []
    student = nn.Linear(2, 2)
    student.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    losses = distillation.train_student(student, x, y, epochs=1, batch_size=4)
    assert seen == [4, 4, 2] and len(losses) == 1
