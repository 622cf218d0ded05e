"""The version, in one place: pyproject.toml reads it from here (setuptools dynamic version)."""
__version__ = "0.2.0"
