"""The openai_chat codec: request, whole answer and error, stream."""
