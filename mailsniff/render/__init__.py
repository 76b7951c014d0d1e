"""Renderers: rich console, JSON Lines. They present finished sessions; they never compute facts."""
