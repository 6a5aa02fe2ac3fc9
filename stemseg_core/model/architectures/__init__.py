"""Whole-network layouts, registered in ``registry.ARCHITECTURES`` (``model.architecture``).

Every module here is imported on the first registry look-up: a new layout is a new file.
"""
