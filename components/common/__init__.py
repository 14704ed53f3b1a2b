"""Shared runtime of the stages: config model, artifact I/O, task recorder, errors, splitting."""
