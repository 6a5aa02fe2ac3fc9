"""Embedding mixing functions, registered in ``stemseg_core.registry.MIXING_FUNCTIONS`` by name.

Every module here is imported on the first registry look-up: a new mixing function is a new
file.
"""
