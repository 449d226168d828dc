"""dlsuite applications: one folder per app, each with config, data, model, train, export."""
