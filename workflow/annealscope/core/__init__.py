"""What every stage shares: config, layout, I/O, the grid and its cost, corpus and model references.

It imports no stage (tests/test_layout.py checks this from the imports)."""
