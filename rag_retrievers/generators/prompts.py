"""The prompts of the RAG pipeline. A :class:`RagPrompt` is a system message and a user
template with ``{context}`` and ``{question}``; pass your own to ``RAG(prompt=...)``."""

from __future__ import annotations

import string
from dataclasses import dataclass

from rag_retrievers.errors import InvalidInputError

#: what an answer says when the passages do not contain it (the pipeline also checks for it)
NOT_FOUND = "not found in the documents"

DEFAULT_SYSTEM = (
    "You answer questions using only the numbered passages the user gives you. "
    "After each statement, cite the passage it comes from by its number in square brackets, "
    "like [1] or [2][3]. Be brief. If the passages do not answer the question, reply exactly: "
    f"{NOT_FOUND}"
)

DEFAULT_USER = (
    "Passages:\n{context}\n\nQuestion: {question}\n"
    "Answer in one or two sentences with citations like [1]."
)


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
