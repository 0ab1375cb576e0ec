"""Ray Serve applications and the typed specs they share with the infra code."""
