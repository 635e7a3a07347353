"""Benchmarks that print figures as tables; none of them is a test."""
