"""Any LangChain chat model (``BaseChatModel``: ChatOpenAI, ChatOllama, ChatLlamaCpp...) as a
generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.generators.base import (
    GeneratorBase,
    Message,
    PromptOrMessages,
    check_params,
    to_messages,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage


def _to_langchain(messages: list[Message]) -> list[BaseMessage]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _text(content: Any) -> str:
    # a message's content is a str, or a list of str / {"type": "text", "text": ...} blocks
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


class LangChainChat(GeneratorBase):
    """Wrap a LangChain chat model. Generation parameters are passed to the model's
    ``invoke``/``stream``/``ainvoke`` as keyword arguments (``stop`` as LangChain's stop list),
    which the model forwards to its backend; ``defaults`` are sent with every call.

    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> gen = LangChainChat(FakeListChatModel(responses=["Paris [1]."]))
    >>> gen.generate("Capital of France?")
    'Paris [1].'
    """

    def __init__(self, chat_model: BaseChatModel, **defaults: Any) -> None:
        from langchain_core.language_models import BaseChatModel

        if not isinstance(chat_model, BaseChatModel):
            raise InvalidInputError(
                f"chat_model must be a langchain BaseChatModel, got {type(chat_model).__name__}"
            )
        check_params(defaults)
        self.chat_model, self.defaults = chat_model, defaults

    def __repr__(self) -> str:
        return f"LangChainChat({type(self.chat_model).__name__})"

    def _call(self, prompt_or_messages: PromptOrMessages, params: dict[str, Any]) -> tuple:
        messages = _to_langchain(to_messages(prompt_or_messages))
        check_params(params)
        options = {**self.defaults, **params}
        stop = options.pop("stop", None)
        if isinstance(stop, str):
            stop = [stop]
        return messages, stop, options

    def generate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        messages, stop, options = self._call(prompt_or_messages, params)
        return _text(self.chat_model.invoke(messages, stop=stop, **options).content)

    def stream(self, prompt_or_messages: PromptOrMessages, **params: Any) -> Iterator[str]:
        messages, stop, options = self._call(prompt_or_messages, params)
        return (
            piece
            for chunk in self.chat_model.stream(messages, stop=stop, **options)
            if (piece := _text(chunk.content))
        )

    async def agenerate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        messages, stop, options = self._call(prompt_or_messages, params)
        return _text((await self.chat_model.ainvoke(messages, stop=stop, **options)).content)
