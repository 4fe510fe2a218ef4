"""DEFT fine-tuning (Algorithm 1): xi, CEM / CMA-ES, runs, rewards and the episode node."""
