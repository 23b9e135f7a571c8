"""Batch scoring with Spark: mlflow.pyfunc.spark_udf over models:/ner/Production in local[2]."""

from __future__ import annotations

import os
import sys

import mlflow
import pytest
from conftest import log_and_stage

from mlflow_flavor.pyfunc import SPARK_RESULT_TYPE

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
