"""helpers.scratch.serving against streams small enough to follow by hand."""
import numpy as np
import pytest

from helpers.scratch import serving

TABLE = {1: 1.0, 2: 1.5}


def test_latency_table_interpolates_and_clamps():
    seconds_for = serving.latency_from_table({1: 1.0, 3: 2.0})
    assert seconds_for(2) == pytest.approx(1.5)
    assert seconds_for(1) == 1.0 and seconds_for(3) == 2.0
    assert seconds_for(10) == 2.0 and seconds_for(0.5) == 1.0
    with pytest.raises(ValueError, match="table"):
        serving.latency_from_table({})
    with pytest.raises(ValueError, match="table"):
        serving.latency_from_table({1: 0.0})
    with pytest.raises(ValueError, match="table"):
        serving.latency_from_table({0: 1.0})


def test_poisson_arrivals_have_the_asked_rate():
    arrivals = serving.poisson_arrivals(50.0, 20_000, seed=3)
    assert len(arrivals) == 20_000 and np.all(np.diff(arrivals) >= 0) and arrivals[0] > 0
    assert np.diff(arrivals).mean() == pytest.approx(1 / 50, rel=0.03)
    assert np.diff(arrivals).std() == pytest.approx(1 / 50, rel=0.05)  # exponential gaps: std equals mean
    assert np.array_equal(arrivals, serving.poisson_arrivals(50.0, 20_000, seed=3))
    assert not np.array_equal(arrivals[:10], serving.poisson_arrivals(50.0, 10, seed=4))
    with pytest.raises(ValueError, match="rate"):
        serving.poisson_arrivals(0.0, 10)
    with pytest.raises(ValueError, match="n_requests"):
        serving.poisson_arrivals(1.0, 0)


def test_arrivals_are_checked():
    assert serving.check_arrivals([0, 1, 1]).dtype == float
    for bad in ([1.0, 0.0], [], [[0.0, 1.0]]):
        with pytest.raises(ValueError, match="arrivals"):
            serving.check_arrivals(bad)


def test_one_at_a_time_by_hand():
    single = serving.simulate_serving(TABLE, np.array([0.0, 0.1, 0.2, 5.0]), 1, 0.0)
    assert np.allclose(single.latencies, [1.0, 1.9, 2.8, 1.0])
    assert list(single.batch_sizes) == [1, 1, 1, 1]


def test_batching_with_a_wait_by_hand():
    batched = serving.simulate_serving(TABLE, np.array([0.0, 0.1, 0.2, 5.0]), 2, 0.5)
    # the first batch closes when the second request arrives (0.1); the third waits for the worker (free at 1.6)
    assert np.allclose(batched.latencies, [1.6, 1.5, 2.4, 1.5])
    assert list(batched.batch_sizes) == [2, 1, 1]
    lone = serving.simulate_serving(TABLE, np.array([0.0, 5.0]), 2, 0.5)
    assert np.allclose(lone.latencies, [1.5, 1.5])  # a lone request waits the whole 0.5 s


def test_batching_without_a_wait_takes_what_is_queued():
    batched = serving.simulate_serving(TABLE, np.array([0.0, 0.1, 0.2, 5.0]), 2, 0.0)
    assert np.allclose(batched.latencies, [1.0, 2.4, 2.3, 1.0])
    assert list(batched.batch_sizes) == [1, 2, 1]
    capped = serving.simulate_serving(TABLE, np.zeros(5), 2, 0.0)
    assert list(capped.batch_sizes) == [2, 2, 1] and np.allclose(capped.latencies, [1.5, 1.5, 3.0, 3.0, 4.0])


def test_percentile():
    result = serving.ServingResult(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([5]))
    assert result.percentile(50) == 3.0 and result.percentile(100) == 5.0
    with pytest.raises(ValueError, match="q"):
        result.percentile(101)


def test_batching_keeps_up_where_one_at_a_time_cannot():
    table = {1: 1e-3, 32: 4e-3}
    arrivals = serving.poisson_arrivals(3000.0, 3000, seed=0)
    single = serving.simulate_serving(table, arrivals, 1, 0.0)
    batched = serving.simulate_serving(table, arrivals, 32, 0.0)
    assert batched.percentile(95) < 0.02 < single.percentile(95)


STEP, PREFILL = {1: 1.0, 2: 1.5}, {1: 0.5, 2: 0.8}


def test_continuous_generation_by_hand():
    result = serving.simulate_generation(STEP, PREFILL, np.array([0.0, 0.2]), np.array([3, 2]), 2, "continuous")
    assert np.allclose(result.ttft, [0.5, 1.8])
    assert np.allclose(result.latency, [3.5, 3.3])
    assert np.allclose(result.tpot, [1.5, 1.5])


def test_static_generation_by_hand():
    result = serving.simulate_generation(STEP, PREFILL, np.array([0.0, 0.2]), np.array([3, 2]), 2, "static")
    assert np.allclose(result.ttft, [0.5, 2.8])
    assert np.allclose(result.latency, [2.5, 3.8])
    assert np.allclose(result.tpot, [1.0, 1.0])


def test_static_batches_keep_finished_rows_and_continuous_ones_release_them():
    arrivals, lengths = np.array([0.0, 0.0]), np.array([2, 4])
    static = serving.simulate_generation(STEP, PREFILL, arrivals, lengths, 2, "static")
    continuous = serving.simulate_generation(STEP, PREFILL, arrivals, lengths, 2, "continuous")
    assert np.allclose(static.latency, [2.3, 5.3]) and np.allclose(continuous.latency, [2.3, 4.3])
    assert np.allclose(static.ttft, [0.8, 0.8])


def test_a_one_token_request_is_done_at_its_prefill():
    result = serving.simulate_generation(STEP, PREFILL, np.array([1.0]), np.array([1]), 4, "continuous")
    assert np.allclose(result.ttft, [0.5]) and np.allclose(result.latency, [0.5]) and np.allclose(result.tpot, [0.0])


def test_max_batch_caps_admission():
    result = serving.simulate_generation(STEP, PREFILL, np.zeros(3), np.array([2, 2, 2]), 2, "continuous")
    assert np.allclose(result.ttft, [0.8, 0.8, 2.8])


def test_generation_validation():
    with pytest.raises(ValueError, match="policy"):
        serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([2]), 2, "greedy")
    with pytest.raises(ValueError, match="output_lengths"):
        serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([2, 3]), 2)
    with pytest.raises(ValueError, match="output_lengths"):
        serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([0]), 2)
    with pytest.raises(ValueError, match="max_batch"):
        serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([1]), 0)
    with pytest.raises(ValueError, match="max_batch"):
        serving.simulate_serving(TABLE, np.array([0.0]), 0)
    with pytest.raises(ValueError, match="max_wait"):
        serving.simulate_serving(TABLE, np.array([0.0]), 1, -1.0)


def test_a_batch_that_fills_with_the_last_request_closes_when_it_arrives():
    batched = serving.simulate_serving(TABLE, np.array([0.0, 0.1]), 2, 0.5)
    assert np.allclose(batched.latencies, [1.6, 1.5]) and list(batched.batch_sizes) == [2]


def test_defaults_serve_one_at_a_time_and_batch_up_to_eight():
    assert list(serving.simulate_serving(TABLE, np.zeros(3)).batch_sizes) == [1, 1, 1]
    step, prefill = {1: 1.0, 16: 1.0}, {1: 1.0, 16: 1.0}
    result = serving.simulate_generation(step, prefill, np.zeros(9), np.full(9, 2))
    assert np.allclose(result.ttft, [1.0] * 8 + [3.0])


def test_continuous_batching_frees_a_finished_slot_at_once():
    arrivals, lengths = np.array([0.0, 0.0, 0.1]), np.array([2, 4, 2])
    result = serving.simulate_generation(STEP, PREFILL, arrivals, lengths, 2, "continuous")
    # A and B prefill together (0.8) and decode one step (2.3): A is done, so C joins before the next step
    assert np.allclose(result.ttft, [0.8, 0.8, 2.8 - 0.1]) and np.allclose(result.latency, [2.3, 5.3, 4.3 - 0.1])


def test_a_one_token_newcomer_does_not_count_as_decoding():
    result = serving.simulate_generation(STEP, PREFILL, np.array([0.0, 0.0]), np.array([1, 3]), 2, "continuous")
    assert np.allclose(result.latency, [0.8, 2.8])   # prefill of two, then two single-sequence steps


@pytest.mark.parametrize("call", [
    lambda: serving.simulate_serving(TABLE, np.array([0.0]), 4097),
    lambda: serving.simulate_serving(TABLE, np.array([0.0]), 1, 3600.5),
    lambda: serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([1]), 4097),
    lambda: serving.poisson_arrivals(1.5e9, 10),
    lambda: serving.poisson_arrivals(1.0, 1_000_001),
    lambda: serving.poisson_arrivals(1.0, 10, seed=2**32),
    lambda: serving.ServingResult(np.ones(3), np.ones(1)).percentile(-0.5),
])
def test_each_bound_is_enforced(call):
    with pytest.raises(ValueError, match=r"^(max_batch|max_wait|rate|n_requests|seed|q) must be a"):
        call()


def test_each_bound_is_inclusive():
    serving.simulate_serving(TABLE, np.array([0.0]), 4096, 3600.0)
    serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([1]), 4096)
    serving.simulate_generation(STEP, PREFILL, np.array([0.0]), np.array([1]), 1)
    assert len(serving.poisson_arrivals(1e9, 1, seed=2**32 - 1)) == 1
    assert serving.ServingResult(np.array([1.0, 3.0]), np.ones(1)).percentile(0.0) == 1.0


@pytest.mark.parametrize("call,message", [
    (lambda: serving.check_arrivals([1.0, 0.0]), "^arrivals must be a non-empty, sorted 1-D array of times$"),
    (lambda: serving.latency_from_table({}), "^table must map at least one batch size >= 1 to a positive"),
    (lambda: serving.simulate_generation(STEP, PREFILL, np.zeros(1), np.zeros(1)), "^output_lengths must hold one"),
    (lambda: serving.simulate_generation(STEP, PREFILL, np.zeros(1), np.ones(1), 2, "x"), "^policy must be one of"),
])
def test_messages_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_more_defaults_and_bounds():
    assert np.array_equal(serving.poisson_arrivals(5.0, 20), serving.poisson_arrivals(5.0, 20, seed=0))
    lone = serving.simulate_serving(TABLE, np.array([0.0, 5.0]), 2)
    assert np.allclose(lone.latencies, [1.0, 1.0])     # no wait unless asked for
    with pytest.raises(ValueError, match=r"^rate must be a number"):
        serving.poisson_arrivals(1e9 + 0.5, 1)
