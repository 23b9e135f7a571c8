"""Batch scoring with Spark: mlflow.pyfunc.spark_udf over models:/ner/Production in local[2]."""

from __future__ import annotations

import os
import sys

import mlflow
import pytest
from conftest import log_and_stage

from mlflow_flavor.pyfunc import SPARK_CLASSIFIER_RESULT_TYPE, SPARK_RESULT_TYPE

pytestmark = pytest.mark.slow
pyspark = pytest.importorskip("pyspark", reason="install the extra: pip install -e '.[spark]'")

TEXTS = [
    "Angela Merkel met Tim Cook in Paris .",
    "Siemens opened a new office in Munich , Germany .",
    "",
    "Shares of Google fell after John Smith warned about sales in Japan .",
]


@pytest.fixture(scope="module")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("flair-mlflow-tests")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_udf_scores_texts_into_entity_structs(spark, tiny_tagger, tracking):
    log_and_stage(tiny_tagger)
    expected = mlflow.pyfunc.load_model("models:/ner/Production").predict(TEXTS)
    assert any(expected)
    udf = mlflow.pyfunc.spark_udf(
        spark,
        "models:/ner/Production",
        env_manager="local",
        result_type=SPARK_RESULT_TYPE,
        params={"output": "records"},
    )
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], ["id", "text"])
    rows = frame.withColumn("entities", udf("text").entities).orderBy("id").collect()
    got = [[entity.asDict() for entity in row["entities"]] for row in rows]
    assert got == expected


def test_spark_udf_scores_texts_with_a_classifier(spark, tiny_bert, tracking):
    from tinymodels import build_tiny_classifier

    log_and_stage(build_tiny_classifier(tiny_bert), name="topic")
    pyfunc = mlflow.pyfunc.load_model("models:/topic/Production")
    expected = pyfunc.predict(TEXTS, params={"top_k": 2})
    assert expected[2] == [] and all(len(x) == 2 for i, x in enumerate(expected) if i != 2)
    assert pyfunc.predict(TEXTS[:1], params={"output": "records"}) == [{"labels": pyfunc.predict(TEXTS[:1])[0]}]
    udf = mlflow.pyfunc.spark_udf(
        spark,
        "models:/topic/Production",
        env_manager="local",
        result_type=SPARK_CLASSIFIER_RESULT_TYPE,
        params={"output": "records", "top_k": 2},
    )
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], ["id", "text"])
    rows = frame.withColumn("labels", udf("text").labels).orderBy("id").collect()
    got = [[label.asDict() for label in row["labels"]] for row in rows]
    # same labels in the same order; scores differ in the last digits (Spark batches the texts differently)
    assert [[x["label"] for x in row] for row in got] == [[x["label"] for x in row] for row in expected]
    for row, reference in zip(got, expected):
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(row, reference))


def test_spark_udf_scores_text_pairs_with_a_regressor(spark, tracking):
    """Two columns into the UDF (they arrive as columns 0 and 1), a number per pair out."""
    from flair.embeddings import DocumentPoolEmbeddings
    from tinymodels import build_text_pair_model, build_tiny_word_embeddings

    from mlflow_flavor.pyfunc import SPARK_VALUE_RESULT_TYPE

    model = build_text_pair_model(DocumentPoolEmbeddings([build_tiny_word_embeddings()]), "regressor")
    log_and_stage(model, name="similarity")
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[3], TEXTS[0]), (TEXTS[1], TEXTS[3])]
    expected = mlflow.pyfunc.load_model("models:/similarity/Production").predict([list(p) for p in pairs])
    udf = mlflow.pyfunc.spark_udf(
        spark, "models:/similarity/Production", env_manager="local", result_type=SPARK_VALUE_RESULT_TYPE
    )
    frame = spark.createDataFrame([(i, a, b) for i, (a, b) in enumerate(pairs)], ["id", "text", "text_pair"])
    rows = frame.withColumn("similarity", udf("text", "text_pair")).orderBy("id").collect()
    assert [row["similarity"] for row in rows] == pytest.approx(expected, rel=1e-4)


def test_spark_udf_scores_entities_and_relations_with_the_type_the_model_gives(spark, tracking):
    """A relation extractor logged with its tagger: spark_result_type(flavor) gives one struct field per task."""
    from tinymodels import build_classic_tagger, build_relation_extractor

    import mlflow_flavor
    from mlflow_flavor.pyfunc import spark_result_type

    with mlflow.start_run():
        mlflow_flavor.log_model(
            build_relation_extractor(),
            name="model",
            tagger=build_classic_tagger("words", use_crf=False),
            registered_model_name="relations",
            parity_sentences=TEXTS[:2] + TEXTS[3:],
        )
    uri = "models:/relations/1"
    result_type = spark_result_type(mlflow.models.get_model_info(uri).flavors["flair_mlflow"])
    assert result_type.startswith("entities array<struct<") and ", relations array<struct<head: struct<" in result_type
    expected = mlflow.pyfunc.load_model(uri).predict(TEXTS)
    udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local", result_type=result_type)
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], ["id", "text"])
    rows = frame.withColumn("answer", udf("text")).orderBy("id").collect()
    got = [[(r.head.text, r.tail.text, r.label) for r in row["answer"].relations] for row in rows]
    assert got == [[(r["head"]["text"], r["tail"]["text"], r["label"]) for r in a["relations"]] for a in expected]
    assert any(got)
