"""codedouble's language server (`codedouble serve`): arrives with the server issue; nothing here yet."""
