"""Audio in one form, and how real recordings differ from a studio (degraded copies)."""
