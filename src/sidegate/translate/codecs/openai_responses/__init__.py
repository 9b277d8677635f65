"""The openai_responses codec: request, whole answer and error, stream."""
