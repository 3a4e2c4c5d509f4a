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
    assert f"{DEFAULT_PRETRAINED}:" in printed and "center_prior:" in printed
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2  # frame | ground truth | map | overlay, and the ROC curves


def test_quickstart_uses_the_public_api_only():
    code = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    imported = re.findall(r"^from (salvid[\w.]*) import (.+)$", code, flags=re.MULTILINE)
    assert imported and all(not name.strip().startswith("_") for _, names in imported for name in names.split(","))
    assert "torch.zeros" not in code and "argsort" not in code  # no hand-made video ids, no manual ROC sorting


@pytest.mark.slow
@pytest.mark.skipif(not (PRETRAINED_DIR / f"{DEFAULT_PRETRAINED}.safetensors").is_file(),
                    reason=f"the default pretrained model {DEFAULT_PRETRAINED} is not shipped in {PRETRAINED_DIR} yet")
def test_quickstart_runs_on_a_clip_of_ones_own(davis_root):
    """A user sets CLIP and MASKS at the top: the real model on a real DAVIS clip, scored against its masks."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    clip, masks = davis_root / "JPEGImages" / "240p" / "tennis", davis_root / "Annotations" / "240p" / "tennis"
    nb.cells[1].source = f'CLIP = "{clip}"\nMASKS = "{masks}"'
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parents[1])}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "tennis" in printed and f"{DEFAULT_PRETRAINED}:" in printed and "center_prior:" in printed
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 2
