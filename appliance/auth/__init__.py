"""Operator authentication."""
