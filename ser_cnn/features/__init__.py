"""Features: the log-mel, the MLP's classic summary, speaker statistics, the cache."""
