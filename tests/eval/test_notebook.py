import re
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
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "salvid:" in printed and "center_prior:" in printed
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2  # frame | ground truth | map | overlay, and the ROC curves


def test_quickstart_uses_the_public_api_only():
    code = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    imported = re.findall(r"^from (salvid[\w.]*) import (.+)$", code, flags=re.MULTILINE)
    assert imported and all(not name.strip().startswith("_") for _, names in imported for name in names.split(","))
    assert "torch.zeros" not in code and "argsort" not in code  # no hand-made video ids, no manual ROC sorting
