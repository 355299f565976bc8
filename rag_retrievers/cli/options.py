"""Options shared by the commands, and what they turn into: a retriever spec, progress on/off."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag_retrievers.spec import RetrieverSpec


def one_line(message: str) -> str:
    """An error message on one line: its lines joined with "; ", blank ones dropped."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def retriever_options(
    p: argparse.ArgumentParser, default: str | None, required: bool = True
) -> None:
    p.add_argument(
        "--retriever",
        default=default,
        required=required,
        help="registered retriever name"
        + ("" if required else " (default: the collection's own, or bm25 for a new one)"),
    )
    p.add_argument(
        "--model",
        help="model short name, local path or Hugging Face id; for hybrid, one name for every "
        "member that takes a model or MEMBER=NAME,... (e.g. dense=minilm,splade=splade-tiny)",
    )
    p.add_argument("--members", help="for --retriever hybrid: comma-separated member names")
    p.add_argument("--fusion", help="for --retriever hybrid: rrf (default) or another fusion")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="retriever option, VALUE as JSON or a plain string, e.g. --param k1=1.2",
    )


def quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None
    except RecursionError:
        from rag_retrievers.filters import MAX_FILTER_DEPTH

        raise argparse.ArgumentTypeError(
            "JSON nested too deeply to read (a filter nests at most "
            f"{MAX_FILTER_DEPTH} levels of $and/$or)"
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise argparse.ArgumentTypeError(f"not valid JSON: {one_line(str(exc))}") from None


def spec_from_args(args: argparse.Namespace, name: str) -> RetrieverSpec:
    from rag_retrievers.spec import RetrieverSpec, parse_params

    members = tuple(m.strip() for m in (args.members or "").split(",") if m.strip())
    return RetrieverSpec(
        name=name,
        model=args.model,
        members=members,
        fusion=args.fusion,
        prf=args.prf,
        params=parse_params(args.param),
    )


def progress_from_args(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "quiet", False) else None


# -- commands ----------------------------------------------------------------------------------
