"""The version of resdsl, low in the package so that any stage can name it."""

__version__ = "0.1.0"
