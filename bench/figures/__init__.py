"""Figures drawn from a sweep's runs.csv (one small module each, each with a CLI)."""
