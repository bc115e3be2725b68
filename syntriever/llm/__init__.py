"""The LLM layer: chat requests in the OpenAI Batch format, run by one of three runners.

- ``batch``: the OpenAI Batch API (upload, create, poll, download; resumable).
- ``online``: concurrent chat completions against any OpenAI-compatible server.
- ``local``: an embedded llama.cpp server started by the project, then the ``online`` runner.

Every runner appends results in the Batch output format and skips ``custom_id``s that already
have one, so an interrupted run resumes without paying twice.
"""

from syntriever.llm.requests import (
    answer_text,
    chat_request,
    load_requests,
    load_results,
    top_logprobs,
)

__all__ = ["answer_text", "chat_request", "load_requests", "load_results", "top_logprobs"]
