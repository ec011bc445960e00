"""`codedouble eval`: the double and its baselines scored on the engineer's held-out future."""
