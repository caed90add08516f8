"""A small Django project for vd's demo and tests: one app, one model."""
