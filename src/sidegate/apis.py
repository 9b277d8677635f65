"""Identifiers of the API formats sidegate speaks (one per wire format, not per path)."""

OPENAI_CHAT = "openai.chat"  # POST …/chat/completions
OPENAI_RESPONSES = "openai.responses"  # POST …/responses
OPENAI_EMBEDDINGS = "openai.embeddings"  # POST …/embeddings
OPENAI_MODELS = "openai.models"  # GET …/models
ANTHROPIC_MESSAGES = "anthropic.messages"  # POST /v1/messages
ANTHROPIC_COUNT_TOKENS = "anthropic.count_tokens"  # POST /v1/messages/count_tokens
GEMINI_GENERATE = "gemini.generate"  # :generateContent and :streamGenerateContent
GEMINI_COUNT_TOKENS = "gemini.count_tokens"  # :countTokens
GEMINI_EMBED = "gemini.embed"  # :embedContent
GEMINI_BATCH_EMBED = "gemini.batch_embed"  # :batchEmbedContents (what google-genai's embed_content calls)

ALL = frozenset({
    OPENAI_CHAT, OPENAI_RESPONSES, OPENAI_EMBEDDINGS, OPENAI_MODELS, ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS,
    GEMINI_GENERATE, GEMINI_COUNT_TOKENS, GEMINI_EMBED, GEMINI_BATCH_EMBED,
})
