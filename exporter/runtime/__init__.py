"""What runs inside Flair's ``predict`` at serving time: the embeddings that call an exported encoder, the length
buckets that feed it, the lean path around it, and what a bundle records of Flair's embedding settings."""
