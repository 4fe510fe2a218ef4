"""Robot-hand configs, retargeting and the hand driver node."""
