"""benchmarks/inprocess_issuance.py measures what it says: every request answered 200
and recorded, or none recorded when the write is taken out. No timing."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "inprocess_issuance.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(SCRIPT, "bench_inprocess_issuance")


def args(*without: str) -> argparse.Namespace:
    return argparse.Namespace(requests=64, concurrency=4, alg="ES256", without=list(without))


@pytest.mark.parametrize(
    ("without", "rows"), [((), 400 + 64), (("signature",), 400 + 64), (("write",), 0)]
)
def test_a_round_answers_and_records_every_request(
    bench: ModuleType, without: tuple[str, ...], rows: int
) -> None:
    result = bench.run_child(None, args(*without))
    assert result["requests"] == 64
    assert result["rows"] == rows  # the warm-up's tokens and the measured ones
    assert result["cpu_us"] > 0
    assert result["wall_us"] > 0


def test_the_report_compares_with_the_baseline(bench: ModuleType) -> None:
    one = {"cpu_us": 200.0, "user_us": 190.0, "system_us": 10.0, "wall_us": 210.0}
    other = {"cpu_us": 250.0, "user_us": 240.0, "system_us": 10.0, "wall_us": 260.0}
    namespace = argparse.Namespace(
        alg="ES256", concurrency=16, without=["write"], rounds=1, requests=3000
    )
    text = bench.report(namespace, {"this tree": [one], "baseline": [other]})
    assert "without the write" in text
    assert "| this tree | 200.0 | 190.0 | 10.0 | 210.0 | 0.800x |" in text
    assert "| baseline | 250.0 | 240.0 | 10.0 | 260.0 | 1.000x |" in text


def test_an_unknown_step_is_refused(bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown step"):
        bench.take_out("parsing", object())
