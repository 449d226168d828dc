"""dlsuite package."""
