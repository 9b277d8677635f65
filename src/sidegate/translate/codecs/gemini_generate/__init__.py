"""The gemini_generate codec: request, whole answer and error, stream."""
