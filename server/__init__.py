"""codedouble's serving side: the language server (`codedouble serve`), the completion engine it shares with
`codedouble eval`, and the contract (`contract/`) every double is written and read by."""
