"""Score a large text file (one text per line) with Spark and the registered model.

    pip install -e '.[spark]'
    python examples/batch_score_spark.py --model-uri models:/ner/Production --input texts.txt --output entities.parquet

Each line becomes a row; the result has the columns ``text`` and ``entities`` (an array of structs with
``text``, ``label``, ``start``, ``end``, ``score``). Spark runs in ``local[N]`` here; on a cluster, pass
``--master`` and make sure the executors can reach the tracking server and the artifact store.
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-uri", default="models:/ner/Production")
    parser.add_argument("--input", required=True, help="a text file, one text per line")
    parser.add_argument("--output", required=True, help="a Parquet directory to write")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import mlflow
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master(args.master).appName("flair-mlflow-batch").getOrCreate()
    try:
        texts = spark.read.text(args.input).withColumnRenamed("value", "text").repartition(args.partitions)
        from mlflow_flavor.pyfunc import SPARK_RESULT_TYPE

        udf = mlflow.pyfunc.spark_udf(
            spark, args.model_uri, env_manager="local", result_type=SPARK_RESULT_TYPE, params={"output": "records"}
        )
        scored = texts.withColumn("entities", udf("text").entities)
        scored.write.mode("overwrite").parquet(args.output)
        print(f"wrote {scored.count()} rows to {args.output}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
