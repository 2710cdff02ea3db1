"""Stream processing: faust-streaming agents (Data Sync fan-out and applier; deltas)."""
