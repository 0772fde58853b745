"""Build-time code that rebuilds the bundled models from ../shared/datasets (needs the ``train`` extra).

Nothing in this package is imported by the runtime.
"""
