"""One codec per API format (a folder per generation format; token counting and embeddings in a
module each), all through `translate.neutral`; `translate.registry` pairs them up."""
