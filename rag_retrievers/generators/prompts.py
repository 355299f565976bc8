"""The prompts of the RAG pipeline. A :class:`RagPrompt` is a system message and a user
template with ``{context}`` and ``{question}``; pass your own to ``RAG(prompt=...)``."""

from __future__ import annotations

import string
from dataclasses import dataclass

from rag_retrievers.errors import InvalidInputError

#: what an answer says when the passages do not contain it (the pipeline also checks for it)
NOT_FOUND = "not found in the documents"

# Short and plain: SmolLM2-135M follows this layout (passages, then the question) best of the
# variants tried; larger models follow the citation and not-found instructions reliably.
DEFAULT_SYSTEM = (
    "You answer questions from the numbered passages the user gives. Answer with one or two "
    "short sentences and cite the passages you use by number in brackets, like [1]. If the "
    f"passages do not contain the answer, reply exactly: {NOT_FOUND}"
)

DEFAULT_USER = "{context}\n\nQuestion: {question}"


@dataclass(frozen=True)
class RagPrompt:
    """A system message (may be empty) and a user message template.

    >>> p = RagPrompt(system="", user="{context}\\nQ: {question}")
    >>> p.messages(context="[1] Paris is in France.", question="Where is Paris?")[0]["content"]
    '[1] Paris is in France.\\nQ: Where is Paris?'
    """

    system: str = DEFAULT_SYSTEM
    user: str = DEFAULT_USER

    def __post_init__(self) -> None:
        if not isinstance(self.system, str) or not isinstance(self.user, str):
            raise InvalidInputError("RagPrompt system and user must be strings")
        fields = {f for _, f, _, _ in string.Formatter().parse(self.user) if f is not None}
        if fields != {"context", "question"}:
            raise InvalidInputError(
                "the user template must use exactly the fields {context} and {question} "
                f"(write literal braces as {{{{ }}}}), got {sorted(fields)}"
            )

    def messages(self, *, context: str, question: str) -> list[dict[str, str]]:
        user = self.user.format(context=context, question=question)
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return [*system, {"role": "user", "content": user}]


DEFAULT_PROMPT = RagPrompt()
