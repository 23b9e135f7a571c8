"""Does an export answer like its original: the parity gate, Flair's own metrics, labeled data and the shipped
check set (``data/check_sentences.txt``). Used when writing a bundle and by the tools, never when loading one."""
