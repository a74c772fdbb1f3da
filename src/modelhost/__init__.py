"""modelhost: serve big, slow-to-load models to many users over the Open Inference Protocol."""

__version__ = "0.1.0"
