"""Run every benchmark (``make bench``)."""

from bench import capture_bench, incremental_bench, round_bench, snapshot_bench, sync_bench

if __name__ == "__main__":
    snapshot_bench.main()
    capture_bench.main()
    sync_bench.main()
    incremental_bench.main()
    round_bench.main()
