"""Training: recipes (optimiser + learning-rate schedule), the epoch loop, cached pre-training."""
