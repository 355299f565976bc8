import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from rag_retrievers.encoders.models import UnknownModelError, offline_names, resolve_model


def test_short_names_resolve_to_installed_folders() -> None:
    for name, kind in [("minilm", "dense"), ("splade-tiny", "sparse")]:
        if name not in offline_names(kind):
            pytest.skip(f"the package carrying {name} is not installed")
        model = resolve_model(name, kind)
        assert model.local
        assert (Path(model.path) / "config.json").is_file()


def test_a_short_name_of_the_other_kind_lists_the_right_names() -> None:
    with pytest.raises(UnknownModelError, match="unknown sparse model 'minilm'"):
        resolve_model("minilm", "sparse")


def test_local_folders_and_hub_ids(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path), "dense").path == str(tmp_path.resolve())
    hub = resolve_model("BAAI/bge-small-en-v1.5", "dense")
    assert (hub.local, hub.path) == (False, "BAAI/bge-small-en-v1.5")
    with pytest.raises(UnknownModelError, match="no model folder"):
        resolve_model(str(tmp_path / "missing"), "dense")
    with pytest.raises(UnknownModelError):
        resolve_model("", "dense")


def test_resolving_splade_tiny_does_not_import_its_package() -> None:
    code = (
        "import sys; from rag_retrievers.encoders.models import resolve_model; "
        "resolve_model('splade-tiny', 'sparse') if 'splade-tiny' in "
        "__import__('rag_retrievers.encoders.models').encoders.models.offline_names('sparse') "
        "else None; print('cognition' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_identity_records_name_folder_fields_and_weights_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    identity = resolve_model(str(tmp_path), "dense").identity(dimension=3, kind="dense")
    assert list(identity) == ["name", "path", "dimension", "kind", "weights"]
    assert identity["name"] == str(tmp_path)
    assert identity["path"] == str(tmp_path.resolve())
    assert identity["weights"] == {
        "files": ["model.safetensors"],
        "bytes": 7,
        "sha256": hashlib.sha256(b"weights").hexdigest(),
    }
    # a hub id that was never downloaded has no local folder, so nothing to fingerprint
    hub = resolve_model("nobody/never-downloaded-model", "dense").identity()
    assert (hub["path"], hub["weights"]) == (None, None)
