"""The pipeline config's sections, one module each (components/common/config.py loads them)."""
