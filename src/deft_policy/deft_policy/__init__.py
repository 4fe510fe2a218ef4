"""The residual policy pi of DEFT: the models, their training on elite episodes, the runtime."""
