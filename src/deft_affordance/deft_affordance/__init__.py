"""The DEFT affordance model f(object, task) and its inference node."""
