"""``python -m mlflow_flavor.cli``: what the MLproject's entry points run."""

from mlflow_flavor.cli.commands import main

main()
