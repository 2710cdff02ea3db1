"""``snapsync soak``: the whole pipeline under a write load and faults, checked (``run.py``)."""
