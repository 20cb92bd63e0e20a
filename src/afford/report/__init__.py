"""Renderers: the only layer that prints."""
