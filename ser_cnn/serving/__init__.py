"""Serving a run folder: the Recognizer, light runtimes, live streams, batches, the app."""
