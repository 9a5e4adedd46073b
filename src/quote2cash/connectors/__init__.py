"""quote2cash."""
