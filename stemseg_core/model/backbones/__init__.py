"""Backbones (+ FPN), one module each, registered in ``stemseg_core.registry.BACKBONES`` by name.

Every module here is imported on the first registry look-up: a new backbone is a new file.
"""
