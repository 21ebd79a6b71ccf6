"""The overhead benchmark still runs (tiny and bounded; no timing is asserted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import load_script

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "verify_overhead.py"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_benchmark_runs(alg: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_script(BENCHMARK, "keyturn_verify_overhead")
    overhead = module.main(["--alg", alg, "--tokens", "4", "--rounds", "1"])
    assert math.isfinite(overhead)
    assert "TokenVerifier.verify" in capsys.readouterr().out
