import os
from pathlib import Path

import pytest

#: the Milvus standalone server fixtures (tests/milvus_server.py)
pytest_plugins = ["milvus_server"]

#: the shared evaluation data, beside the repository (never copied into it)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (subprocesses, wheel builds, real data); CI does",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data folder (``../shared/data`` beside the repository). Where it
    is missing the test skips, saying where it looked; under CI (``CI=true``) data that should
    be there and is not is a failure, never a silent skip."""
    if not SHARED_DATA.is_dir():
        message = f"the shared data is not at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: it must be there)", pytrace=False)
        pytest.skip(message)
    return SHARED_DATA
