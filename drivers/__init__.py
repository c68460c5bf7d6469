"""Hardware drivers: each part has a real backend and a simulated one with the same interface."""
