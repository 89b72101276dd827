"""models/vila."""
