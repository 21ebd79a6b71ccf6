"""The overhead benchmark still runs (tiny and bounded; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "verify_overhead.py"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_benchmark_runs(alg: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("keyturn_verify_overhead", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    overhead = module.main(["--alg", alg, "--tokens", "4", "--rounds", "1"])
    assert math.isfinite(overhead)
    assert "TokenVerifier.verify" in capsys.readouterr().out
