"""Shared models: the practice-database catalog, the change-event envelope and configuration.

Imported by every other package; imports none of them.
"""
