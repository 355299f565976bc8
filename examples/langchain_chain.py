"""An LCEL chain over our hybrid retriever (BM25 + dense MiniLM, fused with RRF), answering
with SmolLM2-135M-Instruct through llama.cpp and citing document ids. Runs offline.

Run: python examples/langchain_chain.py
Swap the generator for any LangChain chat model (ChatOpenAI, ChatOllama...) by replacing `llm`.
"""

from langchain_core.documents import Document as LCDocument
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

from rag_retrievers import BM25, Dense, Document, Hybrid
from rag_retrievers.app.rag import overlap_citations, parse_citations
from rag_retrievers.generators import LlamaCpp
from rag_retrievers.generators.prompts import DEFAULT_SYSTEM, DEFAULT_USER, format_passage

docs = [
    Document(id="volcano", text="A volcano is an opening in the Earth's crust where lava erupts."),
    Document(id="glacier", text="A glacier is a large, slow-moving mass of ice on land."),
    Document(id="delta", text="A river delta forms where a river deposits sediment at its mouth."),
    Document(id="desert", text="The Sahara is the largest hot desert, in North Africa."),
    Document(id="reef", text="Coral reefs are built by colonies of tiny animals called corals."),
]
hybrid = Hybrid([BM25(), Dense("minilm")], fusion="rrf")
hybrid.add(docs)
retriever = hybrid.as_langchain(k=2)  # a langchain_core BaseRetriever

generator = LlamaCpp("smollm2", max_tokens=64)
ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def chat(prompt: PromptValue) -> str:
    """The LLM step: LangChain messages in, our generator's text out."""
    messages = [{"role": ROLES[m.type], "content": str(m.content)} for m in prompt.to_messages()]
    return generator.generate(messages)


def numbered(documents: list[LCDocument]) -> str:
    # the passages as data between delimiters a document cannot forge, as RAG sends them
    return "\n".join(format_passage(i, doc.page_content) for i, doc in enumerate(documents, 1))


prompt = ChatPromptTemplate.from_messages([("system", DEFAULT_SYSTEM), ("human", DEFAULT_USER)])
llm = RunnableLambda(chat)
answer_chain = (
    RunnableLambda(lambda x: {"context": numbered(x["docs"]), "question": x["question"]})
    | prompt
    | llm
    | StrOutputParser()
)
chain = RunnableParallel(docs=retriever, question=RunnablePassthrough()).assign(answer=answer_chain)

for question in ["What are coral reefs built by?", "What is a glacier made of?"]:
    result = chain.invoke(question)
    docs_shown = result["docs"]
    numbers = parse_citations(result["answer"], len(docs_shown))
    how = "the model's [n]"
    if not numbers:  # SmolLM2 often writes no [n]: cite the passages holding the answer's words
        numbers = overlap_citations(
            result["answer"], [d.page_content for d in docs_shown], question
        )
        how = "word overlap"
    print(f"Q: {question}\nA: {result['answer']}")
    for n in numbers:
        doc = docs_shown[n - 1]
        print(f"   [{n}] {doc.id}  (rrf score {doc.metadata['score']:.4f}; cited by {how})")
    print()
