"""Whole-network layouts (``model.architecture``), in ``stemseg_core.registry.ARCHITECTURES``.

Every module here is imported on the first registry look-up: a new layout is a new file.
"""
