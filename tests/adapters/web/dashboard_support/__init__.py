"""Helpers for the dashboard's browser test."""
