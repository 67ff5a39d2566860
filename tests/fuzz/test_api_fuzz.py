"""schemathesis over the live OpenAPI document: no input yields a 5xx or an unmapped error.

Every operation the server documents is fuzzed (coverage phase: boundary and invalid
values of every parameter; fuzzing phase: valid and invalid generated requests), then the
stateful phase chains calls along the links schemathesis infers. Auth is on, with an
installation-wide admin key, so every route is reached past its permission check. The
seed is fixed and the example count bounded (apifuzz.py). Besides any 5xx, the run fails
when ``mentatlab_unhandled_errors_total`` moved: an exception the error table does not map
was raised while serving, whatever status the catch-all turned it into.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apifuzz import SEED, FuzzTarget, run_schemathesis, start_target

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    yield from start_target(tmp_path_factory.mktemp("fuzz-api"))


def test_no_input_yields_a_server_error(fuzz_target: FuzzTarget, tmp_path: Path,
                                        record_property: pytest.RecordProperty) -> None:
    assert fuzz_target.unhandled_errors() == {}
    code, output, report = run_schemathesis(fuzz_target, tmp_path)
    cases = report.get("test_cases", {})
    operations = report.get("operations", {})
    summary = (f"schemathesis (seed {SEED}): {cases.get('generated')} cases over "
               f"{operations.get('tested')}/{operations.get('total')} operations, "
               f"{cases.get('with_failures')} failing, phases "
               + ", ".join(f"{name} {phase['status']}"
                           for name, phase in report.get("phases", {}).items()))
    stateful = output[output.find("Stateful ("):output.find("SUMMARY")].strip()
    print(f"\n{summary}\n{stateful}")  # noqa: T201 — the counts the integrator reports (-s)
    record_property("schemathesis_cases", cases.get("generated"))
    assert code == 0 and report.get("complete"), f"{summary}\n{output[-20_000:]}"
    assert report["phases"]["stateful"]["status"] == "success", summary
    assert operations["tested"] == operations["total"], summary
    assert fuzz_target.unhandled_errors() == {}, (
        "exceptions the error table does not map were raised while serving")
