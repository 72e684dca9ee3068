"""Dock widgets, one module each; thin layers over the core API."""
