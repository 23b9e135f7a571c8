"""Tooling on top of the flavor: ``mlflow models serve`` as a child process (``serving``) and the load test that
drives it (``loadtest``). Never shipped in a logged model."""
