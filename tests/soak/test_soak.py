"""The soak for two minutes with a fixed seed (``snapsync soak``; longer runs: ``make soak``):
every process of the pipeline under a write load, a simulated night every ~12 s, a fault
every ~6 s (every kind at least once); each invariant must hold."""

from __future__ import annotations

import json

from snapsync.soak.chaos import FAULT_KINDS
from snapsync.soak.run import INVARIANTS, Soak, whole
from snapsync.soak.oracle import differences


def test_two_minutes_of_faults_break_no_invariant(tmp_path):
    report = Soak(tmp_path / "soak", minutes=2, seed=11, say=print).run()
    try:
        assert report.violations == {k: 0 for k in INVARIANTS}, report.details
        assert set(report.faults) == set(FAULT_KINDS)  # every kind, each at least once
        assert report.nights >= 3 and report.writes["committed"] > 100
        # both accounts delivered every night: full and incremental, in more than one format
        assert sum(report.deliveries.values()) >= 2 * report.nights
        assert any(k.startswith("incremental") for k in report.deliveries)
        assert {k.split()[1] for k in report.deliveries if k.startswith("full")} >= {"dat", "mysql"}
        assert all(codes == [] for codes in report.exits.values()), report.exits  # none gave up
    finally:
        from snapsync.local import LocalStack

        LocalStack(tmp_path / "soak").down()


def test_the_checks_see_a_wrong_package(tmp_path):
    """The oracle's comparisons are not blind: a row missing, one extra, one different, and a
    file not as its manifest says are each reported (ids only)."""
    want = {"charge": [(1, 5, "a"), (2, 5, "b"), (3, 5, "c")]}
    got = {"charge": [(1, 5, "a"), (3, 5, "changed"), (4, 5, "d")]}
    [line] = differences(want, got)
    assert "1 missing, 1 extra, 1 different" in line and "changed" not in line
    pkg = tmp_path / "delivery" / "customer-5"
    pkg.mkdir(parents=True)
    (pkg / "charge.DAT").write_text("id\n1\n")
    (pkg / "manifest.json").write_text(json.dumps({"files": [{"file": "charge.DAT", "sha256": "0" * 64}]}))
    assert whole(tmp_path / "delivery") == ["customer-5/charge.DAT: missing or not as its manifest says"]
