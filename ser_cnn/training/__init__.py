"""Training and scoring: the CNN and MLP, cross-validation, fine-tuning, calibration fits."""
