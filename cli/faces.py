"""`photomatch faces` and `photomatch compare`: the face engine from the shell, JSON out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from photomatch.imaging import ImageError, load_image

# Images decoded and analysed together: enough to batch same-sized photos, few enough that a
# folder of 24 MP originals does not exhaust memory.
_CHUNK = 8


def register(sub: Any) -> None:
    """Add the face subcommands."""
    p = sub.add_parser("faces", help="detect faces in images and print them as JSON")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--embeddings", action="store_true", help="include each face's vector and model name")
    p.set_defaults(handler=cmd_faces)
    c = sub.add_parser("compare", help="compare the most prominent face of two images")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.set_defaults(handler=cmd_compare)


def _error(path: Path, e: ImageError) -> dict[str, Any]:
    print(f"photomatch: {path}: {e}", file=sys.stderr)
    return {"path": str(path), "error": {"reason": e.reason, "message": str(e)}}


def cmd_faces(args: argparse.Namespace) -> int:
    """Print {"images": [{path, width, height, faces: [...]}, ...]}; exit 1 if any image failed."""
    from photomatch.faces.engine import get_engine

    engine = get_engine()
    results: list[dict[str, Any]] = []
    failed = 0
    paths: list[Path] = args.images
    for start in range(0, len(paths), _CHUNK):
        loaded = []
        for path in paths[start : start + _CHUNK]:
            try:
                loaded.append((path, load_image(path)))
            except ImageError as e:
                results.append(_error(path, e))
                failed += 1
        faces = engine.analyze([im.rgb for _, im in loaded], embed=args.embeddings) if loaded else []
        for (path, im), found in zip(loaded, faces, strict=True):
            results.append(
                {
                    "path": str(path),
                    "width": im.width,
                    "height": im.height,
                    "faces": [f.to_json(embeddings=args.embeddings) for f in found],
                }
            )
    order = {str(p): i for i, p in enumerate(paths)}
    results.sort(key=lambda r: order[r["path"]])
    json.dump({"images": results}, sys.stdout)
    sys.stdout.write("\n")
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print {distance, threshold, same_person, model} for the largest face in each image."""
    from cli.errors import CliError
    from photomatch.faces.engine import distance, get_engine

    engine = get_engine()
    vectors = []
    for path in (args.a, args.b):
        try:
            im = load_image(path)
        except ImageError as e:
            raise CliError(f"{path}: {e}") from e
        faces = engine.analyze([im.rgb])[0]
        if not faces:
            raise CliError(f"{path}: no face found")
        if faces[0].embedding is None:
            raise CliError(f"{path}: the largest face is {faces[0].detection.size:.0f} px, too small to identify")
        vectors.append(faces[0].embedding)
    d = distance(vectors[0], vectors[1])
    threshold = engine.settings.verify_threshold
    json.dump(
        {
            "a": str(args.a),
            "b": str(args.b),
            "distance": round(d, 4),
            "threshold": threshold,
            "same_person": d <= threshold,
            "model": engine.model_name,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0
