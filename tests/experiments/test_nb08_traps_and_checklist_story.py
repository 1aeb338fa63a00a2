"""Notebook 08, part 3: the generated story, the traps table and the live checklist questions."""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.experiments import nb08_traps_and_checklist_story as story

FACTS = story.Facts(
    messages=6000, random_overstatement=0.132, time_overstatement=-0.01, calm_overstatement=0.004,
    random_twins=0.15, flagged=250, precision=0.41, precision_same_budget=0.27, recall_before=0.45,
    recall_after=0.9, recall_disagree=0.88, overwritten=150, overwritten_disagree=500, shipped="MLP",
    shipped_f1=0.731, shipped_p50_ms=0.06, p50_budget_ms=0.25, tolerance=0.01, best_model="nearest neighbours",
    best_f1=0.77, ensemble_gain=0.004, ensemble_slowdown=5.2, int8_size_ratio=3.8, int8_speedup_batch=2.1,
    int8_speedup_single=0.6, temperature=2.9, temperature_ordinary=1.1, temperature_copies=12.0,
    ece_ordinary=0.15, ece_ordinary_own=0.03, copies_share=0.26, copies_accuracy=0.31, ordinary_accuracy=0.9,
    lookup_gain=0.11, threshold_miss=0.07, threshold_miss_same_period=0.05, loss_epoch=2, accuracy_epoch=9,
    regularizer_change=0.01, pretrained_gain=0.03, pretrained_other_gain=0.002, pretrained_control_gain=0.005)


def test_resume_bullet_carries_the_measured_numbers():
    bullet = story.resume_bullet(FACTS)
    for text in ("13 points", "0 points", "250", "45%", "90%", "MLP", "0.06 ms", "+0.004", "5.2x"):
        assert text in bullet


def test_interview_answer_fits_ninety_seconds_and_names_the_trade_off():
    answer = story.interview_answer(FACTS)
    assert 190 <= len(answer.split()) <= 270                              # about 150 words a minute
    for text in ("nearest neighbours", "26% of messages", "temperature was 2.9", "wanted 1.1", "88%", "150 right",
                 "instead of 500", "missed their target", "missed the 0.25 ms budget"):
        assert text in answer
    shipped_best = story.interview_answer(story.Facts(**{**FACTS.__dict__, "best_model": "MLP"}))
    assert "also the best" in shipped_best
    close = story.interview_answer(story.Facts(**{**FACTS.__dict__, "best_f1": 0.735}))
    assert "inside the tolerance" in close
    held = story.interview_answer(story.Facts(**{**FACTS.__dict__, "threshold_miss": -0.01}))
    assert "missed their target" not in held


def test_follow_ups_answer_with_the_controls():
    answers = story.follow_ups(FACTS)
    assert len(answers) == 6 and all("?" in answer for answer in answers)
    assert "88% against 90%" in answers[0] and "41%" in answers[0] and "27%" in answers[0]
    assert "0 points" in answers[1] and "12.0" in answers[2] and "0.150 instead of 0.030" in answers[2]
    assert "5 points" in answers[3] and "+0.110" in answers[4] and "3 points" in answers[5]
    assert "0 points on the others" in answers[5] and "older text: 0 points" in answers[5]
    held = story.follow_ups(story.Facts(**{**FACTS.__dict__, "threshold_miss_same_period": -0.02}))[3]
    assert "every channel held" in held and "-2 points" not in held and "7 points" in held


def test_symptoms_table_puts_both_populations_side_by_side():
    values = {"incident copies": 1.0, "ordinary messages": 2.0}
    rows = story.symptoms_table(values, {**values, "all messages": 9.0}, values, values)
    assert len(rows) == 4 and all(set(row) == {"symptom", "incident copies", "ordinary messages"} for row in rows)
    assert rows[1]["ordinary messages"] == 2.0


def test_traps_table_has_the_guides_five_traps_with_evidence():
    rows = story.traps_table(FACTS)
    assert len(rows) == 5 and all(set(row) == {"trap", "the wrong answer", "what this run measured"} for row in rows)
    assert "1.7x slower" in rows[4]["what this run measured"]
    assert "41% of them really wrong" in rows[2]["what this run measured"]
    assert "31% right" in rows[3]["what this run measured"]
    assert "points of accuracy" not in rows[1]["what this run measured"]


def test_points_formats_a_difference_of_fractions():
    assert story.points(0.132) == "13 points" and story.points(-0.05) == "-5 points"
    assert story.points(0.012) == "1 point" and story.points(0.0) == "0 points"


def test_the_live_measurements_give_the_textbook_answers():
    assert story.chain_rule_factor() == pytest.approx(2.0)
    assert story.adam_first_step_growth() == pytest.approx(1.0, abs=0.01)
    assert story.vanishing_orders() > 8
    assert story.score_spread(64) == pytest.approx(8.0, rel=0.1)
    assert story.transformer_int8_ratio() == pytest.approx(story.transformer_int8_expected(), rel=0.02)
    assert story.transformer_int8_expected(64) == pytest.approx(story.transformer_int8_ratio(64), rel=0.05)
    assert 1.9 < story.transformer_int8_expected() < 2.1                  # feed-forward weights only
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 10)).astype(np.float32)
    assert story.initial_loss(x, rng.integers(0, 5, 500), 5) == pytest.approx(math.log(5), abs=0.1)


def test_gap_shrinks_with_more_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 40))
    labels = (x[:, 0] + rng.normal(0, 1.0, 3000) > 0).astype(int)
    assert story.gap_shrinkage(x[:2500], labels[:2500], x[2500:], labels[2500:], small=50, large=2000) > 0.05


def test_check_predictions_never_raises_and_reports_every_verdict(capsys):
    questions = [story.Question("item a", "what is two?", lambda: 2.0, 0.1, "because"),
                 story.Question("item b", "what is three?", lambda: 3.0, 0.1, "because")]
    rows = story.check_predictions(questions, {1: 2.05, 2: "three"})
    assert [row["measured"] for row in rows] == [2.0, 3.0]
    assert rows[0]["your prediction"] == 2.05 and rows[1]["seconds"] >= 0
    story.check_predictions(questions, {1: 5, 2: None})
    output = capsys.readouterr().out
    assert "Correct" in output and "must be a number" in output and "Not quite" in output
    assert "Not attempted" in output and "Hint: because" in output


def test_the_checklist_has_eight_questions_with_live_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2500, 8)).astype(np.float32)
    labels = rng.integers(0, 5, 2500)
    questions = story.checklist(x[:2200], labels[:2200], x[2200:], labels[2200:], 5, lambda: 0.004)
    assert len(questions) == 8
    assert questions[-1].measure() == 0.004 and questions[5].measure() == pytest.approx(math.log(5), abs=0.1)
    assert "output projection" in questions[6].why


def test_short_answers_quote_the_run():
    answers = story.short_answers(FACTS)
    assert len(answers) == 7 and all("Rule:" in answer for answer in answers)
    assert "13 points" in answers[0] and "250" in answers[1] and "5.2x" in answers[2] and "2.9" in answers[4]
    assert "12.0" in answers[4] and "3 points" in answers[6] and "31% right" in answers[6]
