"""Collapsing functions B: sampled texts -> semantic classes."""
