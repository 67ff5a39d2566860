"""MentatLab package."""
