import json
import math

import pytest

from helpers import claims, config


@pytest.fixture(autouse=True)
def _notebook(monkeypatch):
    monkeypatch.delenv("DL_SEED", raising=False)
    config.setup("claims_test", verbose=False)


def test_passing_claim_prints_verdict_and_is_recorded(capsys):
    verdict = claims.claim("loss falls below one", 0.25, "<", 1.0)
    assert verdict.passed
    out = capsys.readouterr().out
    assert out.startswith("[PASS] loss falls below one") and "0.25" in out and "< 1" in out
    entries = json.loads(claims.ledger_path("claims_test").read_text())
    assert entries[-1]["statement"] == "loss falls below one" and entries[-1]["passed"]


def test_failing_claim_raises_and_is_still_recorded():
    with pytest.raises(AssertionError, match=r"\[FAIL\] accuracy beats chance"):
        claims.claim("accuracy beats chance", 0.05, ">", 0.1)
    assert claims.load("claims_test")[-1]["passed"] is False


@pytest.mark.parametrize("measured, op, threshold, ok", [
    (1, "<=", 1, True), (2, ">=", 3, False), (0.5, "between", (0, 1), True),
    (1.5, "between", (0, 1), False), (True, "==", True, True), (math.nan, "<", 1, False),
])
def test_operators(measured, op, threshold, ok):
    if ok:
        assert claims.claim(f"case {op} {threshold}", measured, op, threshold).passed
    else:
        with pytest.raises(AssertionError):
            claims.claim(f"case {op} {threshold}", measured, op, threshold)


def test_rerunning_a_claim_replaces_its_ledger_entry():
    claims.claim("same sentence", 1, "<", 2)
    claims.claim("same sentence", 1.5, "<", 2)
    entries = claims.load("claims_test")
    assert [e["measured"] for e in entries if e["statement"] == "same sentence"] == [1.5]
    assert not list(claims.ledger_path("claims_test").parent.glob("*.tmp"))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="op must be one of"):
        claims.claim("x", 1, "!=", 2)
    with pytest.raises(ValueError, match="threshold must be a"):
        claims.claim("x", 1, "between", (2, 1))
    with pytest.raises(ValueError, match="statement"):
        claims.claim("  ", 1, "<", 2)


def test_report_lists_every_claim():
    claims.claim("first claim", 1, "<", 2)
    table = claims.report()
    assert "| claims_test | first claim | 1 | < 2 | pass |" in table
