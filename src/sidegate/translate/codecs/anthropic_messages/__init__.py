"""The anthropic_messages codec: request, whole answer and error, stream."""
