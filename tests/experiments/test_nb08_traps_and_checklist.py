"""Notebook 08, part 1: the message generator, its planted problems, and the checks that find them."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.experiments import nb08_traps_and_checklist as capstone


@pytest.fixture(scope="module")
def messages():
    return capstone.generate(3000, seed=0)


def test_generation_is_reproducible_and_sorted_by_time(messages):
    again = capstone.generate(3000, seed=0)
    np.testing.assert_array_equal(messages.words, again.words)
    assert not np.array_equal(messages.words, capstone.generate(3000, seed=1).words)
    assert len(messages) == 3000 and np.all(np.diff(messages.day) >= 0)
    assert messages.day.min() >= 0 and messages.day.max() < capstone.DAYS


def test_the_planted_shares_are_what_was_asked_for(messages):
    assert np.mean(messages.burst >= 0) == pytest.approx(0.25, abs=1e-3)
    wrong = messages.given_queue != messages.true_queue
    chat_refund = ((messages.channel == 1) & (messages.true_queue == capstone.QUEUES.index("refund"))
                   & (messages.burst < 0))
    assert not np.any(wrong & ~chat_refund), "label noise only in ordinary chat messages about refunds"
    assert np.all(messages.given_queue[wrong] == capstone.QUEUES.index("billing"))
    assert 0.45 < wrong[chat_refund].mean() < 0.75
    app = messages.product == 1
    assert app[messages.day < 60].mean() < 0.4 < 0.6 < app[messages.day > 300].mean()


def test_incident_copies_share_an_error_code_and_an_owner(messages):
    incident = np.flatnonzero(messages.burst == messages.burst[messages.burst >= 0][0])
    assert len(incident) >= 8
    assert len(set(messages.true_queue[incident])) == 1
    assert messages.day[incident].max() - messages.day[incident].min() < 1.0
    code = len(capstone.WORDS) + messages.burst[incident[0]]
    assert np.mean([(code in messages.words[i]) for i in incident]) > 0.6
    assert messages.vocabulary[code].startswith("err")


def test_text_shows_metadata_and_words(messages):
    line = messages.text(0)
    assert "day" in line and capstone.CHANNELS[messages.channel[0]] in line
    assert capstone.QUEUES[messages.given_queue[0]] in line
    assert any(capstone.WORDS[w] in line for w in messages.words[0] if 0 <= w < len(capstone.WORDS))


@pytest.mark.parametrize("kwargs, name", [
    ({"n": 10}, "n"), ({"burst_share": 0.95}, "burst_share"), ({"copy_fidelity": 1.5}, "copy_fidelity"),
    ({"noise_rate": -0.1}, "noise_rate"), ({"transcription_error": 2.0}, "transcription_error"),
    ({"seed": -1}, "seed")])
def test_generate_refuses_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        capstone.generate(**{"n": 1000, **kwargs})


def test_no_bursts_means_no_incidents():
    calm = capstone.generate(1000, seed=0, burst_share=0.0)
    assert np.all(calm.burst == -1) and len(calm.vocabulary) == len(capstone.WORDS)


def test_features_use_only_the_vocabulary_of_the_fitted_rows(messages):
    early = np.flatnonzero(messages.day < 100)
    x = capstone.features(messages, early)
    words = capstone.presence(messages)
    assert x.shape == (len(messages), int((words[early].sum(0) > 0).sum()) + 5)
    assert capstone.features(messages, early, words_only=True).shape[1] == x.shape[1] - 5
    later_only = (words[early].sum(axis=0) == 0) & (words.sum(axis=0) > 0)
    assert later_only.sum() > 10                                  # later incidents' codes: no column for them


def test_presence_marks_each_word_once(messages):
    words = capstone.presence(messages)
    assert set(np.unique(words)) <= {0.0, 1.0}
    ids = messages.words[5][messages.words[5] >= 0]
    assert words[5].sum() == len(set(ids))


def test_splits_partition_the_past_and_test_on_the_future(messages):
    time_rows, random_rows = capstone.split(messages, "time"), capstone.split(messages, "random", seed=3)
    group_rows = capstone.split(messages, "group", seed=3)
    past = np.flatnonzero(messages.day < capstone.VALIDATION_END)
    for rows in (time_rows, random_rows, group_rows):
        assert np.array_equal(np.sort(np.concatenate([rows["train"], rows["validation"]])), past)
        assert np.all(messages.day[rows["test"]] >= capstone.VALIDATION_END)
    assert messages.day[time_rows["train"]].max() < capstone.TRAIN_END <= messages.day[time_rows["validation"]].min()
    assert len(random_rows["validation"]) == len(past) - round(0.8 * len(past))
    with pytest.raises(ValueError, match="kind"):
        capstone.split(messages, "shuffled")


def test_the_group_split_keeps_every_incident_on_one_side(messages):
    rows = capstone.split(messages, "group", seed=1)
    train_incidents = set(messages.burst[rows["train"]]) - {-1}
    validation_incidents = set(messages.burst[rows["validation"]]) - {-1}
    assert train_incidents and validation_incidents and not train_incidents & validation_incidents
    share = len(rows["validation"]) / (len(rows["train"]) + len(rows["validation"]))
    assert 0.12 < share < 0.28
    assert not np.array_equal(rows["validation"], capstone.split(messages, "group", seed=2)["validation"])


def test_cosine_nearest_by_hand():
    query = np.array([[1.0, 0.0], [1.0, 1.0]])
    reference = np.array([[2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(capstone.cosine_nearest(query, reference), [1.0, np.sqrt(0.5)])
    np.testing.assert_allclose(capstone.cosine_nearest(query, reference, chunk=1), [1.0, np.sqrt(0.5)])
    assert np.all(capstone.cosine_nearest(query, reference[:0]) == 0)


def test_the_random_split_leaks_near_twins_and_overstates(messages):
    runs = {kind: capstone.split_run(messages, kind) for kind in capstone.SPLITS}
    assert runs["random"].twin_rate > 0.08 > 0.03 > max(runs["time"].twin_rate, runs["group"].twin_rate)
    assert runs["random"].overstatement > runs["time"].overstatement
    assert runs["random"].overstatement == pytest.approx(
        runs["random"].validation_accuracy - runs["random"].future_accuracy)


def test_leak_explorer_answers_with_a_figure_numbers_and_a_note():
    fig, numbers = capstone.leak_explorer(burst_share=0.0, split_kind="time")
    assert fig.axes[0].has_data()
    assert {"validation accuracy", "future accuracy", "overstatement", "validation near-twins"} <= set(numbers)
    assert "No incident bursts" in numbers["note"]
    with pytest.raises(ValueError, match="split_kind"):
        capstone.leak_explorer(split_kind="other")


def test_audit_flags_the_planted_errors_and_cleans_only_flagged_labels(messages):
    past = np.flatnonzero(messages.day < capstone.VALIDATION_END)
    audit = capstone.audit_labels(messages, past, folds=3, seed=0)
    assert audit.probs.shape == (len(past), len(capstone.QUEUES))
    changed = np.flatnonzero(audit.cleaned != messages.given_queue)
    assert set(changed) <= set(past[audit.flagged])
    quality = {row["method"]: row for row in audit.quality(messages)}
    assert quality["confident learning"]["precision"] > quality["prediction disagrees"]["precision"]
    same_budget = quality["least self-confident, same budget"]
    assert same_budget["flagged"] == quality["confident learning"]["flagged"]
    assert audit.joint.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(audit.relabelled(messages, audit.flagged), audit.cleaned)
    relabelled = audit.relabelled(messages, audit.disagree)
    assert np.array_equal(relabelled[past[audit.disagree]], audit.probs[audit.disagree].argmax(axis=1))
    assert np.array_equal(relabelled[past[~audit.disagree]], messages.given_queue[past[~audit.disagree]])


@pytest.fixture(scope="module")
def audited(messages):
    run = capstone.split_run(messages, "time")
    past = np.concatenate([run.rows["train"], run.rows["validation"]])
    return run, capstone.audit_labels(messages, past, folds=3, seed=0)


def test_relabelling_table_has_every_control(messages, audited):
    run, audit = audited
    rows, fitted = capstone.relabelling(messages, audit, run)
    assert [row["labels"] for row in rows] == ["as recorded", "confident learning's flags relabelled",
                                               "every disagreement relabelled", "as recorded, channel left out"]
    assert fitted["as recorded"] is run.model
    assert fitted["as recorded, channel left out"].n_features_in_ == run.x.shape[1] - len(capstone.CHANNELS)
    assert rows[0]["labels changed"] == 0 == rows[3]["labels changed"]
    assert rows[1]["labels changed"] == int((audit.cleaned != messages.given_queue).sum())
    assert rows[2]["right labels overwritten"] > rows[1]["right labels overwritten"]
    assert rows[1]["chat-refund recall"] > rows[0]["chat-refund recall"]


def test_pruning_checker_never_raises_and_trains_on_what_is_kept(messages, audited, capsys):
    run, audit = audited
    assert capstone.check_pruning(np.setdiff1d, messages, audit, run, 0.9)
    assert not capstone.check_pruning(lambda rows, flagged: (_ for _ in ()).throw(NotImplementedError()),
                                      messages, audit, run, 0.9)
    assert not capstone.check_pruning(lambda rows, flagged: rows, messages, audit, run, 0.9)
    assert not capstone.check_pruning(lambda rows, flagged: 1 / 0, messages, audit, run, 0.9)
    output = capsys.readouterr().out
    assert "Correct" in output and "Not attempted" in output and "Not quite" in output
    assert "after relabelling them" in output


def test_label_noise_figure_shows_off_diagonal_cells_only(messages, audited):
    _, audit = audited
    fig = capstone.label_noise_figure(audit, messages)
    texts = [text.get_text() for text in fig.axes[1].texts]
    assert len(texts) == len(capstone.QUEUES) ** 2 and texts[0] == ""             # the diagonal is blank
    planted_errors = int((messages.given_queue[audit.rows] != messages.true_queue[audit.rows]).sum())
    assert sum(int(text) for text in texts if text) == planted_errors


def test_pretrained_stand_in_reports_each_feature_set(messages, audited):
    run, _ = audited
    baseline = capstone.logistic_regression(run.x[run.rows["train"]], messages.given_queue[run.rows["train"]])
    corpus = capstone.generate(3000, seed=7)
    rows = capstone.pretrained_stand_in(messages, run, messages.given_queue, baseline, corpus, dim=8)
    assert [row["features"] for row in rows] == ["vocabulary only", "+ vectors from text before day 240",
                                                 "+ vectors from the whole year's text"]
    assert all(0.5 < row["accuracy, other ordinary messages"] <= 1 for row in rows)
    assert all(0.5 < row["accuracy, messages with new words"] <= 1 for row in rows)
    assert rows[0]["messages with new words"] > 50


def test_segment_scores_and_planted_table(messages):
    rows = capstone.split(messages, "time")
    x = capstone.features(messages, rows["train"])
    model = capstone.logistic_regression(x[rows["train"]], messages.true_queue[rows["train"]])
    scores = capstone.segment_scores(messages, model, x, rows["test"])
    assert set(scores) == {"chat-refund recall", "email and phone accuracy"}
    assert all(0.3 < value <= 1 for value in scores.values())
    assert len(capstone.planted(messages)) == 5
    with pytest.raises(ValueError, match="strength"):
        capstone.logistic_regression(x[:10], messages.true_queue[:10], strength=0.0)
