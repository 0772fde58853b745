"""Bundled models and their runtime: static embeddings, linear heads, integrity manifests.

Import the submodules (`bartizan.models.embedder`, `.heads`, `.manifest`); nothing is loaded at import time.
"""
