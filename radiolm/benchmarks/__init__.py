"""``radiolm bench train|generate``: an experiment's speed at its real shapes (samples/s, reports/s, peak memory,
padding share), optionally with random weights; ``radiolm bench dia-llama-step`` is one case of ``train``."""
