"""codedouble's trainer side: mining an engineer's git history into change records (`codedouble mine`)."""
