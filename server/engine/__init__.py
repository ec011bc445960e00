"""The completion engine `codedouble serve` and `codedouble eval` share: the model, a cache n-gram and BM25 retrieval over the engineer's own code, and their combination."""
