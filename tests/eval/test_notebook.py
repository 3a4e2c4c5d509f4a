from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from salvid.checkpoints import DEFAULT_PRETRAINED, PRETRAINED_DIR

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


@pytest.mark.skipif(not (PRETRAINED_DIR / f"{DEFAULT_PRETRAINED}.safetensors").is_file(),
                    reason=f"the default pretrained model {DEFAULT_PRETRAINED} is not shipped in {PRETRAINED_DIR} yet "
                           "(python -m salvid.train +experiment=pretrain_davis; python -m salvid.export ...)")
def test_quickstart_notebook_runs_top_to_bottom():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parents[1])}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "salvid:" in printed and "center_prior:" in printed
