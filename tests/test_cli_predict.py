"""`flair-mlflow predict` takes any model reference, texts from arguments, a file or stdin, and params."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlflow_flavor.cli.commands import main

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Siemens opened a new office in Munich , Germany ."]


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_predict_a_bundle_directory_from_arguments_a_file_and_stdin(tiny_bundle, tmp_path):
    runner = CliRunner()
    from_args = _json(runner.invoke(main, ["predict", str(tiny_bundle), *TEXTS]))
    assert len(from_args) == 2 and any(from_args)
    for answer, text in zip(from_args, TEXTS):
        assert all(text[e["start"] : e["end"]] == e["text"] for e in answer)
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert _json(runner.invoke(main, ["predict", str(tiny_bundle), "--file", str(lines)])) == from_args
    assert _json(runner.invoke(main, ["predict", str(tiny_bundle), "--file", "-"], input="\n".join(TEXTS))) == from_args
    # '-' as a text reads standard input where it stands, as Unix tools do (it tagged the text "-")
    assert _json(runner.invoke(main, ["predict", str(tiny_bundle), "-"], input="\n".join(TEXTS))) == from_args
    piped = _json(runner.invoke(main, ["predict", str(tiny_bundle), TEXTS[1], "-"], input=TEXTS[0] + "\n"))
    assert piped == [from_args[1], from_args[0]]
    tokens = _json(runner.invoke(main, ["predict", str(tiny_bundle), "--return-tokens", TEXTS[0]]))
    assert tokens[0]["entities"] == from_args[0] and [t["text"] for t in tokens[0]["tokens"]][:2] == [
        "Angela",
        "Merkel",
    ]
    high = _json(runner.invoke(main, ["predict", str(tiny_bundle), "--min-score", "0.99", *TEXTS]))
    assert all(e["score"] >= 0.99 for answer in high for e in answer)
    split = _json(runner.invoke(main, ["predict", str(tiny_bundle), "--split-sentences", " ".join(TEXTS)]))
    assert len(split) == 1


def test_predict_errors_say_what_to_do(tiny_bundle, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["predict", str(tiny_bundle)])
    assert result.exit_code == 2 and "--file" in result.output
    result = runner.invoke(main, ["predict", str(tiny_bundle), "--top-k", "2", "x"])
    assert result.exit_code == 2 and "--top-k does not apply to a sequence tagger" in result.output
    result = runner.invoke(main, ["predict", str(tmp_path / "missing"), "x"])
    assert result.exit_code == 2 and "is not a model reference" in result.output
    # a missing --file: click's one-line error naming the option, no traceback
    result = runner.invoke(main, ["predict", str(tiny_bundle), "--file", str(tmp_path / "nowhere.txt")])
    assert result.exit_code == 2 and "'--file'" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["predict", str(tiny_bundle), "-", "--file", "-"], input="x\n")
    assert result.exit_code == 2 and "Standard input can be read once" in result.output


@pytest.mark.slow
def test_predict_an_mlflow_model_directory(tiny_tagger, tmp_path):
    import mlflow_flavor

    mlflow_flavor.save_model(tiny_tagger, tmp_path / "model")
    answers = _json(CliRunner().invoke(main, ["predict", str(tmp_path / "model"), *TEXTS]))
    bundle = _json(CliRunner().invoke(main, ["predict", str(tmp_path / "model" / "bundle"), *TEXTS]))
    assert answers == bundle
