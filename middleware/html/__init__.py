"""The rewriter's parts, one job each (the list is in ``middleware/rewrite.py``, the public
entry, and in docs/rewriter.md): grammar, the tokenizer, foreign content, tag decisions,
partner lookup, nested documents, oversized tags."""
