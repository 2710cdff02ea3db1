"""Run every benchmark (``make bench``), then print every ratio they measured in one table
(each bench also prints its own figures, the reference's beside snapsync's)."""

import json

from bench import capture_bench, incremental_bench, round_bench, snapshot_bench, sync_bench
from bench.common import RESULTS


def ratios(value, path: str = ""):
    """(path, number) of every key named like a ratio or speed-up, at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if isinstance(v, (int, float)) and ("ratio" in path or "ratio" in k or "speedup" in k):
                yield sub, v
            else:
                yield from ratios(v, sub)


def summary() -> None:
    print("\nratios (docs/benchmarks.md says what each compares and its goal)")
    for result in sorted(RESULTS.glob("*.json")):
        for name, value in ratios(json.loads(result.read_text())):
            print(f"  {result.stem:<12} {name:<70} {value:>8.2f}")


if __name__ == "__main__":
    snapshot_bench.main()
    capture_bench.main()
    sync_bench.main()
    incremental_bench.main()
    round_bench.main()
    summary()
