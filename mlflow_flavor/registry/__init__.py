"""The model registry: register, stage and alias versions (``versions``), evaluate a version on labeled data
(``evaluate``), gate on the result (``gate``) and promote across stages, aliases, buckets and servers
(``promote``). Never shipped in a logged model."""
