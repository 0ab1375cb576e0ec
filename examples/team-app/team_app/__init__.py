"""A tiny CPU app a team keeps in its own package: a greeting per name."""
