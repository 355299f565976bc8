"""Answer questions over a small corpus with SmolLM2-135M-Instruct (llama.cpp, offline), with
numbered citations mapped back to document ids, streaming, and "not found" for a question the
documents cannot answer.

Run: python examples/rag_answer.py [CORPUS.jsonl]
(CORPUS: BEIR-style lines with _id/id, text, title?; default: a small corpus this script writes)
SmolLM2-135M is tiny: its answers are short and sometimes wrong; a larger GGUF (pass its path to
LlamaCpp) or an OpenAI-compatible server (OpenAICompatible(url)) answers better.
"""

import json
import sys
import tempfile
from pathlib import Path

from rag_retrievers.evals.beir import read_corpus

from rag_retrievers import BM25, RAG
from rag_retrievers.generators import LlamaCpp

CORPUS = [
    {
        "_id": "eiffel",
        "title": "Eiffel Tower",
        "text": "The Eiffel Tower is a wrought-iron tower in Paris, France, completed in 1889.",
    },
    {
        "_id": "nile",
        "title": "Nile",
        "text": "The Nile is a river in Africa. It flows north into the Mediterranean Sea.",
    },
    {
        "_id": "python",
        "title": "Python",
        "text": "Python is a programming language created by Guido van Rossum.",
    },
    {
        "_id": "moon",
        "title": "Moon",
        "text": "The Moon is the only natural satellite of the Earth.",
    },
    {
        "_id": "honey",
        "title": "Honey",
        "text": "Honey is a sweet food made by bees from the nectar of flowers.",
    },
]
QUESTIONS = [
    "In which city is the Eiffel Tower?",
    "Who created the Python programming language?",
    "What do bees make honey from?",
]


def corpus_path(folder: Path) -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CORPUS), encoding="utf-8")
    return path


with tempfile.TemporaryDirectory() as tmp:
    retriever = BM25()
    retriever.add(read_corpus(corpus_path(Path(tmp))))

rag = RAG(retriever, LlamaCpp("smollm2", max_tokens=64), k=2, max_context_tokens=512)
for question in QUESTIONS:
    answer = rag.ask(question)
    print(f"Q: {question}\nA: {answer.text}")
    numbers = {hit.id: n for n, hit in enumerate(answer.contexts, 1)}
    for doc_id in answer.citations:
        # "model": the answer's own [n]; "overlap": the model wrote none, the passage holding
        # the answer's words is cited for it
        print(f"   [{numbers[doc_id]}] {doc_id}  (cited by: {answer.citations_from})")
    print()

# streamed: the text arrives piece by piece; the checked answer and citations once it is complete
streamed = rag.stream("Where does the Nile flow?")
print("Q: Where does the Nile flow?\nA: ", end="")
for piece in streamed:
    print(piece, end="", flush=True)
final = streamed.answer  # "not found in the documents" if no passage supports the text
print(f"\n   checked: {final.text!r}, citations {final.citations} ({final.citations_from})\n")

# the Moon passage is retrieved but holds no distance: SmolLM2 invents a number, which no passage
# supports, so the checked answer is "not found in the documents"
question = "How far is the Moon from the Earth?"
print(f"Q: {question}\nA:", rag.ask(question).text)

# nothing in the corpus matches: no passages, so the pipeline answers without the model
print("Q: What is the boiling point of mercury?\nA:", rag.ask("boiling point of mercury?").text)
