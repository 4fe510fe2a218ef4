"""Shared helpers of the DEFT nodes: parameter declaration, image codec, rotations, node main."""
