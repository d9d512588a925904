"""Benchmark scripts (`python -m bench.<name>`); figures are quoted in README's performance section."""
