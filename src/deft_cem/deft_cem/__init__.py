"""DEFT fine-tuning core (parameters, CEM, rewards, residual policy) and the episode node."""
