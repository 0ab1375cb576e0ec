"""A torch CNN that classifies image tiles (e.g. digital-pathology tiles) as positive/negative."""
