"""Demos that ship with gotel: everything each one runs is in its package."""
