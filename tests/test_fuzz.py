"""Mutated MLPerf Tiny models: every mutant compiles or ends in one clean one-line error;
none hangs, dies, raises an unexpected exception, or is accepted while broken."""
from __future__ import annotations

import collections

import pytest

from fuzz_tflite import compile_mutant, mutants

MODELS = ("ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8")


def _fuzz(shared_dir, count: int, seed: int) -> collections.Counter:
    models = {name: (shared_dir / "models" / f"{name}.tflite").read_bytes() for name in MODELS}
    outcomes, problems = collections.Counter(), []
    for mutant in mutants(models, count, seed):
        outcome, detail = compile_mutant(mutant.data)
        outcomes[outcome] += 1
        if outcome in ("unexpected", "hang", "died"):
            problems.append(f"{mutant.how}: {outcome} {detail}")
        elif outcome == "accepted" and mutant.breaks:
            problems.append(f"{mutant.how}: accepted although broken")
        elif outcome == "refused" and ("\n" in detail or not detail):
            problems.append(f"{mutant.how}: error not one line: {detail!r}")
    assert not problems, f"{len(problems)} of {count} mutants went wrong:\n" + "\n".join(problems[:20])
    return outcomes


def test_fuzz_default(shared_dir):
    outcomes = _fuzz(shared_dir, 150, seed=1)
    assert outcomes["refused"] > 0 and outcomes["accepted"] > 0  # the mutator reaches both ends


@pytest.mark.slow
def test_fuzz_thousands(shared_dir):
    _fuzz(shared_dir, 3000, seed=2)
