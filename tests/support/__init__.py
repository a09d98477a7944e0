"""Test helpers: synthetic data with known truth."""
