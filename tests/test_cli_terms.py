"""Errors in the caller's terms (issue 23, item 13): the library's Python spelling of an option becomes the
command line's flag, or the MLflow project's -P parameter."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tinymodels import build_classic_tagger

from exporter.format.modelfile import save_plain
from mlflow_flavor.cli.commands import main
from mlflow_flavor.cli.terms import in_cli_terms


@pytest.mark.parametrize(
    "python, cli, project",
    [
        ("Use backend='torch' to log it.", "Use --backend torch to log it.", "Use -P backend=torch to log it."),
        (
            "precision='fp16' is not available; export fp32, or quantize='int8'.",
            "--precision fp16 is not available; export fp32, or --quantize int8.",
            "-P precision=fp16 is not available; export fp32, or -P quantize=int8.",
        ),
        (
            'use OnnxOptions(quantize="int8") or TorchScriptOptions(quantize="int8")',
            "use --quantize int8 or --backend torchscript --quantize int8",
            "use -P quantize=int8 or -P backend=torchscript -P quantize=int8",
        ),
        (
            "relax min_tag_agreement, force with ParityConfig(force=True), or check on parity_sentences",
            "relax --min-agreement, force with --force, or check on --parity-sentences",
            "relax --min-agreement, force with --force, or check on -P parity_sentences",
        ),
        ("a gold_conll_file stays", "a gold_conll_file stays", "a gold_conll_file stays"),
    ],
)
def test_python_spellings_become_flags_or_project_parameters(python, cli, project):
    assert in_cli_terms(python) == cli
    assert in_cli_terms(python, project=True) == project


def test_an_export_refusal_names_the_flag_not_the_keyword(tmp_path):
    # character language models take no fp16: said as the command line (or the MLflow project) says it
    path = save_plain(build_classic_tagger("flair"), tmp_path / "lms.pt")
    result = CliRunner().invoke(
        main, ["export", str(path), str(tmp_path / "out"), "--precision", "fp16", "--fp16-fallback"]
    )
    assert result.exit_code == 2, result.output
    assert "--precision fp16 is not available" in result.output and "--quantize int8" in result.output
    assert "precision='fp16'" not in result.output and "Traceback" not in result.output
    project = CliRunner().invoke(
        main, ["--from-project", "export", str(path), str(tmp_path / "out2"), "--precision", "fp16", "--fp16-fallback"]
    )
    assert "-P precision=fp16 is not available" in project.output and "-P quantize=int8" in project.output
