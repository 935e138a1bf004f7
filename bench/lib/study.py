"""The calibration study: albums sampled from cached faces, search's features, models fitted on one half
of the identities and reported on the other. bench/search_study.py runs it with its options;
bench/calibrate.py fits the product's calibration file with its defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.lib.identity_cache import OUT as CACHE_DIR
from bench.lib.metrics import average_precision
from photomatch.search import scoring
from photomatch.search.calibration import Calibration, Model, SearchParams
from photomatch.search.cohort import CohortParams, cohort_stats
from photomatch.search.scoring import Features, pairwise_distances

FAMILIES = ("dev-faces", "dev-lfw", "dev-fiw")


@dataclass
class Faces:
    """One family's cached faces: identity, family (relatives share it), selfie and album vectors."""

    identity: np.ndarray
    family: np.ndarray
    selfie: np.ndarray
    album: np.ndarray
    quality: np.ndarray  # selfie p/size/sharp, album p/size/sharp
    # The same faces embedded by a second model (bench/identity_cache.py --also), when fused.
    selfie2: np.ndarray | None = None
    album2: np.ndarray | None = None

    @classmethod
    def load(cls, name: str, fuse: str | None = None) -> Faces:
        """The cache of the current engine; else the newest one, with a warning (IndexError if none).

        With `fuse`, also that model's cache of the same faces (FileNotFoundError if missing); faces
        either model missed are dropped from both.
        """
        from bench.lib.face_sets import engine_fingerprint
        from photomatch.config import get_settings

        current = sorted(CACHE_DIR.glob(f"{name}-{engine_fingerprint(get_settings().embedder)}*.npz"))
        if not current:
            print(
                f"{name}: no cache for the current engine; using an older one (bench/identity_cache.py)",
                file=sys.stderr,
            )
        model = get_settings().embedder
        path = (current or sorted(CACHE_DIR.glob(f"{name}-{model}-*.npz"), key=lambda p: p.stat().st_mtime))[-1]
        with np.load(path) as z:
            ident = z["identity"]
            fam = np.array([i.split("_")[0] if name == "dev-fiw" else i for i in ident])
            faces = cls(ident, fam, z["selfie"], z["album"], z["quality"])
        if fuse:
            other = path.with_name(path.name.replace(get_settings().embedder, fuse))
            with np.load(other) as z2:
                assert (z2["identity"] == ident).all(), "the two caches must hold the same faces"
                faces.selfie2, faces.album2 = z2["selfie"], z2["album"]
            faces.selfie[~np.isfinite(faces.selfie2[:, 0])] = np.nan
            faces.album[~np.isfinite(faces.album2[:, 0])] = np.nan
        return faces


def half_of(identity: str) -> int:
    """0 or 1, fixed by the name: the fitting and the reporting halves never share a person."""
    return hashlib.sha256(identity.encode()).digest()[0] & 1


@dataclass
class Album:
    """A sampled album: its faces (vector, photo, identity) and its selfies (vector, identity)."""

    emb: np.ndarray
    photo: np.ndarray
    ident: np.ndarray
    quality: np.ndarray
    q_emb: np.ndarray
    q_ident: np.ndarray
    q_quality: np.ndarray  # per selfie: probability, size, sharpness
    relevant: list[set[int]]  # per query: the photos that show the person
    emb2: np.ndarray | None = None  # the second model's vectors, when fused
    q_emb2: np.ndarray | None = None


def sample_album(
    faces: Faces, half: int, rng: np.random.Generator, *, targets: int, photos: int, per_photo: tuple[int, int]
) -> Album:
    """An album of `photos` photos from one half's identities; relatives grouped where families exist."""
    ok = np.isfinite(faces.album[:, 0])
    by_id: dict[str, list[int]] = {}
    for i, ident in enumerate(faces.identity):
        if half_of(ident) == half and ok[i]:
            by_id.setdefault(str(ident), []).append(i)
    sel_ok = np.isfinite(faces.selfie[:, 0])
    eligible = [k for k, v in by_id.items() if len(v) >= 3 and any(sel_ok[j] for j in v)]
    rng.shuffle(eligible)
    chosen = eligible[:targets]
    appearances: list[int] = []
    selfies: list[int] = []
    for ident in chosen:
        imgs = list(by_id[ident])
        rng.shuffle(imgs)
        s = next(j for j in imgs if sel_ok[j])
        selfies.append(s)
        appearances += [j for j in imgs if j != s][:4]
    others = [k for k in by_id if k not in set(chosen)]
    rng.shuffle(others)
    slots = sum(int(rng.integers(per_photo[0], per_photo[1] + 1)) for _ in range(photos))
    for ident in others[: max(0, slots - len(appearances))]:
        appearances.append(int(rng.choice(by_id[ident])))
    # Photos: appearances of one family stay together (a wedding's relatives share the frame).
    order = sorted(appearances, key=lambda j: (faces.family[j], rng.uniform()))
    blocks: dict[str, list[int]] = {}
    for j in order:
        blocks.setdefault(str(faces.family[j]), []).append(j)
    fams = list(blocks.values())
    rng.shuffle(fams)
    photo_of = np.zeros(len(appearances), np.int64)
    flat = [j for fam in fams for j in fam]
    cap = max(1, len(flat) // photos)
    used_ids: list[set[str]] = [set() for _ in range(photos)]
    p = 0
    for k, j in enumerate(flat):
        # Fill photos in turn; a person never appears twice in one photo.
        tries = 0
        while (faces.identity[j] in used_ids[p % photos] or len(used_ids[p % photos]) >= cap + 1) and tries < photos:
            p += 1
            tries += 1
        photo_of[k] = p % photos
        used_ids[p % photos].add(str(faces.identity[j]))
        if len(used_ids[p % photos]) >= cap:
            p += 1
    idx = np.array(flat)
    ident = faces.identity[idx]
    q_ident = faces.identity[np.array(selfies)]
    relevant = [set(photo_of[ident == qi].tolist()) for qi in q_ident]
    return Album(
        emb=faces.album[idx].astype(np.float16).astype(np.float32),  # halfvec, as stored
        photo=photo_of,
        ident=ident,
        quality=faces.quality[idx, 3:],
        q_emb=faces.selfie[np.array(selfies)],
        q_quality=faces.quality[np.array(selfies), :3],
        q_ident=q_ident,
        relevant=relevant,
        emb2=None if faces.album2 is None else faces.album2[idx].astype(np.float16).astype(np.float32),
        q_emb2=None if faces.selfie2 is None else faces.selfie2[np.array(selfies)],
    )


# (family, album kind, half): which albums a sampled album belongs with.
AlbumKey = tuple[str, str, int]


# --- features of a (selfie, photo) candidate -------------------------------------------------------

# The product's search constants (candidate radius, expansion) are the study's defaults; the scan
# limit is the product's setting. Both are written into the calibration file the study fits.
SEARCH = SearchParams()
EXPANSION_Z = 6.0  # --expansion z: the z a hit needs to expand the query


@dataclass
class Candidates:
    """Per (query, photo) within the candidate radius: its best face's features and whether it is the person."""

    query: np.ndarray
    photo: np.ndarray
    relevant: np.ndarray
    features: Features  # what search computes (photomatch.search.scoring)
    extra: dict[str, np.ndarray]  # the studies' own features, which search does not compute
    total_relevant: int
    relevant_of: np.ndarray  # per query: how many photos show the person

    def column(self, name: str) -> np.ndarray:
        """A feature's column, search's or a study's."""
        return self.features.column(name) if name in Features.NAMES else self.extra[name]


# The second embedder's impostor-cohort prior, on its own distance scale: SFace cohorts at ranks
# 10-100 of crowded dev-lfw albums (1,960 faces): means 1.207 +- 0.015, spreads 0.0195 +- 0.0024
# (dlib-resnet-v1 on the same album: 0.449 +- 0.017, 0.0157, CohortParams' defaults).
SECOND_COHORT = {"sface-2021dec-int8bq": CohortParams(prior_mean=1.21, prior_sd=0.02)}


def scan_limit() -> int:
    """The faces one scan returns, by the first model (Settings.search_max_candidates)."""
    from photomatch.config import get_settings

    return get_settings().search_max_candidates


def _scanned(by: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` of each row's scan_limit() nearest faces by `by`: the second model's distances a search
    sees (it reads them for the first model's nearest faces only)."""
    limit = scan_limit()
    if by.shape[1] <= limit:
        return values
    top = np.argpartition(by, limit - 1, axis=1)[:, :limit]
    return np.take_along_axis(values, top, axis=1)


def augmented(al: Album, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Database-side augmentation: each album face's vectors (both models) averaged with its `k`
    nearest faces of other photos (by the sum of both distances, each over its cohort mean), the
    nearest weighing most. A person's appearances pull together; whether relatives do too is the
    question --dba answers."""
    assert al.emb2 is not None
    d = pairwise_distances(al.emb, al.emb) / 0.45 + pairwise_distances(al.emb2, al.emb2) / 1.21
    d = np.where(al.photo[:, None] == al.photo[None, :], np.inf, d)
    nearest = np.argsort(d, axis=1)[:, :k]
    weights = 1.0 - np.arange(k) / (k + 1.0)
    out = []
    for emb in (al.emb, al.emb2):
        v = emb.astype(np.float64) + (weights[None, :, None] * emb[nearest]).sum(axis=1)
        out.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    return out[0], out[1]


def _project(x: np.ndarray, mu: np.ndarray, w: np.ndarray) -> np.ndarray:
    y = (x.astype(np.float64) - mu) @ w
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def wccn_fit(args: argparse.Namespace) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per model: the mean and the within-class whitening of the fitting half's faces (selfies and
    album faces of every family), shrunk by args.wccn towards the identity."""
    xs: list[list[np.ndarray]] = [[], []]
    ys: list[np.ndarray] = []
    for family in args.families:
        faces = Faces.load(family, args.fuse)
        ok = np.isfinite(faces.album[:, 0]) & np.isfinite(faces.selfie[:, 0])
        ok &= np.array([half_of(str(i)) == 0 for i in faces.identity])
        for k, (sel, alb) in enumerate(((faces.selfie, faces.album), (faces.selfie2, faces.album2))):
            assert sel is not None and alb is not None
            xs[k] += [sel[ok], alb[ok]]
        ys += [faces.identity[ok]] * 2
    y = np.concatenate(ys)
    out = []
    for k in range(2):
        x = np.concatenate(xs[k]).astype(np.float64)
        sw = np.zeros((x.shape[1], x.shape[1]))
        for c in np.unique(y):
            xc = x[y == c] - x[y == c].mean(axis=0)
            sw += xc.T @ xc
        sw /= len(x)
        sw = (1 - args.wccn) * sw + args.wccn * np.trace(sw) / len(sw) * np.eye(len(sw))
        e, v = np.linalg.eigh(sw)
        out.append((x.mean(axis=0), v @ np.diag(e**-0.5) @ v.T))
    return out


def _expanded_all(q: np.ndarray, emb: np.ndarray, hits: list[list[int]]) -> np.ndarray:
    """Each query expanded with its hits, as search expands one (photomatch.search.scoring.expanded)."""
    return np.stack([scoring.expanded(q[qi], emb[js]) for qi, js in enumerate(hits)])


def _cohort(d: np.ndarray, params: CohortParams, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each query's cohort mean and spread, shaped to broadcast over its row (or picked for `rows`)."""
    mu, sd = cohort_stats(d, params)
    return (mu[:, None], sd[:, None]) if rows is None else (mu[rows], sd[rows])


def candidates(
    al: Album,
    params: CohortParams,
    own: tuple[tuple[str, ...], np.ndarray, float] | None = None,
    expansion_z: float = EXPANSION_Z,
    params2: CohortParams | None = None,
    dba: int = 0,
    rivals: bool = False,
    wccn: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Candidates:
    """The album's candidates with every feature any feature set uses.

    Search's features come from photomatch.search.scoring, over every selfie at once. Expansion
    takes the selfie's matches by the own-evidence model `own` (its features, weights and match
    threshold) when given, else the faces EXPANSION_Z spreads closer than the cohort (the first
    pass, which fits that model).
    """
    fused = al.emb2 is not None and al.q_emb2 is not None
    p2 = params2 or params
    n_faces = len(al.emb)
    d = pairwise_distances(al.q_emb, al.emb)
    same_photo = al.photo[:, None] == al.photo[None, :]
    f_mu, f_sd = cohort_stats(pairwise_distances(al.emb, al.emb), params, same_photo=same_photo)
    d2 = pairwise_distances(al.q_emb2, al.emb2) if fused else None
    full = scoring.query_features(
        d, _cohort(d, params), n_faces, d2, None if d2 is None else _cohort(_scanned(d, d2), p2)
    )
    extra_full: dict[str, np.ndarray] = {}
    if fused and wccn is not None:
        # Within-class covariance normalisation fitted on the other half's people, per model; its
        # cohort from the faces the first model's scan returns, as a search would see them.
        no_prior = CohortParams(prior_weight=0.0)
        for model, qe, ae, (mu0, w0) in (("", al.q_emb, al.emb, wccn[0]), ("2", al.q_emb2, al.emb2, wccn[1])):
            dw = pairwise_distances(_project(qe, mu0, w0), _project(ae, mu0, w0))
            extra_full[f"dw{model}"], extra_full[f"zw{model}"] = (
                dw,
                scoring.z_score(dw, *_cohort(_scanned(d, dw), no_prior)),
            )
    pick = scoring.photo_choice_key(full)
    rows = []
    for qi in range(len(d)):
        within = np.flatnonzero(d[qi] <= SEARCH.candidate_radius)
        rows += [
            (qi, int(al.photo[j]), int(j))
            for j in within[scoring.best_face_per_photo(al.photo[within], pick[qi, within])]
        ]
    q = np.array([r[0] for r in rows], dtype=np.int64)
    ph = np.array([r[1] for r in rows], dtype=np.int64)
    f = np.array([r[2] for r in rows], dtype=np.int64)
    feats = full.take((q, f))
    dd = feats.d
    extra = {k: v[q, f] for k, v in extra_full.items()}
    q_mu = cohort_stats(d, params)[0]
    extra |= {
        "z_f": scoring.z_score(dd, f_mu[f], f_sd[f]),
        "mu_q": q_mu[q],
        "selfie_size": al.q_quality[q, 1],
        "selfie_sharpness": al.q_quality[q, 2],
    }
    extra["z_sym"] = 0.5 * (feats.z_q + extra["z_f"])
    extra["log_size"] = np.log(np.clip(al.quality[f, 1], 10, 400))
    extra["log_sharp"] = np.log(np.clip(np.nan_to_num(al.quality[f, 2], nan=100.0), 1, 1000))
    # Expansion: the selfie plus its likely hits, chosen and added as search does.
    if own is None:
        confident, limit = full.z_q, expansion_z
    else:
        names, w, limit = own
        confident = predict(np.stack([full.column(n) for n in names] + [np.ones(d.shape)], axis=-1), w)
    hits = [scoring.expansion_hits(confident[qi], al.photo, limit, SEARCH.expansion_hits) for qi in range(len(d))]
    d_exp = pairwise_distances(_expanded_all(al.q_emb, al.emb, hits), al.emb)
    d2_exp = None
    if fused:
        d2_exp = pairwise_distances(_expanded_all(al.q_emb2, al.emb2, hits), al.emb2)
    feats = scoring.with_expansion(
        feats,
        d_exp[q, f],
        _cohort(d_exp, params, q),
        None if d2_exp is None else d2_exp[q, f],
        None if d2_exp is None else _cohort(_scanned(d_exp, d2_exp), p2, q),
    )
    if fused and dba:
        aug, aug2 = augmented(al, dba)
        for model, query, album, p in (("", al.q_emb, aug, params), ("2", al.q_emb2, aug2, p2)):
            d_aug = pairwise_distances(query, album)
            extra[f"d{model}_dba"] = d_aug[q, f]
            extra[f"z{model}_dba"] = scoring.z_score(d_aug[q, f], *_cohort(d_aug, p, q))
    if fused and rivals:
        assert d2_exp is not None
        # Rivals: does the candidate face have closer company than the (expanded) query? A relative's
        # own other appearances sit nearer to it than the selfie does; a true match's are the hits.
        for model, emb, dq in (("", al.emb, d_exp), ("2", al.emb2, d2_exp)):
            dd_all = pairwise_distances(emb, emb)
            dd_all = np.where(al.photo[:, None] == al.photo[None, :], np.inf, dd_all)
            nn = np.sort(dd_all, axis=1)[:, :3]
            extra[f"nn1{model}"] = nn[f, 0]
            extra[f"nn3{model}"] = nn[f, 2]
            closer = (dd_all[f] < dq[q, f][:, None]).sum(axis=1)
            extra[f"log_closer{model}"] = np.log1p(closer)
    rel = np.array([p in al.relevant[qq] for qq, p in zip(q, ph, strict=True)], dtype=bool)
    return Candidates(
        q, ph, rel, feats, extra, sum(len(r) for r in al.relevant), np.array([len(r) for r in al.relevant])
    )


# Feature sets compared: each is a calibrated logistic model of P(the photo shows the person).
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "raw distance": ("d",),
    "distance + event size": ("d", "log_n"),
    "query cohort": ("d", "z_q", "log_n"),
    "query cohort + mean": ("d", "z_q", "mu_q", "log_n"),
    "symmetric cohort": ("d", "z_sym", "log_n"),
    "both sides apart": ("d", "z_q", "z_f", "log_n"),
    "query cohort + expansion": ("d", "z_q", "log_n", "d_exp", "z_exp"),
    "query cohort + quality": ("d", "z_q", "log_n", "log_size", "log_sharp"),
}
# With --fuse: the same two models, each adding the second embedder's distance and z.
FUSED_SETS: dict[str, tuple[str, ...]] = {
    "fused: second model alone": ("d2", "z_q2", "log_n"),
    "fused: query cohort": ("d", "z_q", "d2", "z_q2", "log_n"),
    "fused: query cohort + expansion": ("d", "z_q", "d2", "z_q2", "log_n", "d_exp", "z_exp", "d2_exp", "z2_exp"),
}


# With --fuse and --dba K: expansion plus the distances to the database-side augmented faces.
DBA_SET = FUSED_SETS["fused: query cohort + expansion"] + ("d_dba", "z_dba", "d2_dba", "z2_dba")


def design(c: Candidates, names: tuple[str, ...]) -> np.ndarray:
    """The model's inputs for every candidate: the features, then a constant."""
    return np.stack([c.column(n) for n in names] + [np.ones(len(c.query))], axis=1)


# --- measures -----------------------------------------------------------------------------------


def recall_at_precision(score: np.ndarray, rel: np.ndarray, total: int, precision: float) -> float:
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(rel[order])
    prec = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(prec >= precision)
    return float(tp[ok[-1]] / total) if len(ok) else 0.0


def threshold_for_precision(score: np.ndarray, rel: np.ndarray, precision: float) -> float:
    """The loosest score threshold whose pooled precision is still >= `precision`."""
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(rel[order])
    prec = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(prec >= precision)
    return float(score[order][ok[-1]]) if len(ok) else float(score.max() + 1)


def band_threshold(score: np.ndarray, rel: np.ndarray, upper: float, precision: float) -> float:
    """The loosest lower bound whose band [lower, upper) still has precision >= `precision`."""
    below = score < upper
    s, r = score[below], rel[below]
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(r[order])
    prec = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(prec >= precision)
    return float(s[order][ok[-1]]) if len(ok) else upper


def pr(score: np.ndarray, rel: np.ndarray, total: int, lo: float, hi: float = np.inf) -> tuple[float, float]:
    sel = (score >= lo) & (score < hi)
    tp = int((sel & rel).sum())
    return (tp / int(sel.sum()) if sel.any() else 1.0), tp / max(1, total)


def fit_logistic(
    x: np.ndarray,
    rel: np.ndarray,
    iters: int = 60,
    l2: float = 1e-3,
    sample_weight: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """Weights w of P(relevant) = 1 / (1 + exp(-(x @ w + offset))), fitted by Newton's method (lightly
    regularised); `offset` (default 0) is a log-odds each row starts from."""
    w = np.zeros(x.shape[1])
    sw = np.ones(len(x)) if sample_weight is None else sample_weight * len(x) / sample_weight.sum()
    base = np.zeros(len(x)) if offset is None else np.asarray(offset, dtype=np.float64)
    scale = np.maximum(np.abs(x).max(axis=0), 1e-9)
    xs = x / scale  # conditioning; undone below
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xs @ w + base, -30, 30)))
        g = xs.T @ (sw * (p - rel)) + l2 * w
        h = (xs * (sw * p * (1 - p))[:, None]).T @ xs + l2 * np.eye(len(w))
        w = w - np.linalg.solve(h, g)
    return w / scale


def predict(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))


def expected_calibration_error(prob: np.ndarray, rel: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by their counts."""
    idx = np.clip((prob * bins).astype(int), 0, bins - 1)
    err = 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            err += m.mean() * abs(prob[m].mean() - rel[m].mean())
    return float(err)


def refusal_rate(faces: Faces, min_size: float = 40, min_sharpness: float = 10) -> float:
    """Selfies the product would refuse: no face, or the face too small or too blurred."""
    q = faces.quality[:, :3]
    ok = np.isfinite(q[:, 1]) & (q[:, 1] >= min_size) & (q[:, 2] >= min_sharpness)
    return float(1 - ok.mean())


def album_sizes(family: str, args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    """(targets, photos) per album kind: a crowd and a party; dev-faces only has people for a party."""
    if family == "dev-faces":
        return {"party": (26, 40)}
    return {"crowd": (args.targets, args.photos), "party": (30, 40)}


def sampled_albums(
    args: argparse.Namespace, refusals: dict[str, float] | None = None
) -> Iterator[tuple[AlbumKey, Album]]:
    """Every (family, album kind, half, album) the study samples with `args`, its Faces loaded once per
    family (with the second model's when args.fuse); the selfie refusal rate per family goes to `refusals`."""
    fuse = getattr(args, "fuse", None)
    for family in args.families:
        try:
            faces = Faces.load(family, fuse)
        except (IndexError, FileNotFoundError):
            print(f"no cache for {family}: run bench/identity_cache.py", file=sys.stderr)
            continue
        if refusals is not None:
            refusals[family] = round(refusal_rate(faces), 4)
        fam_code = int(hashlib.sha256(family.encode()).hexdigest()[:4], 16)
        for kind, (targets, photos) in album_sizes(family, args).items():
            for half in (0, 1):
                n_albums = args.albums if kind == "crowd" else args.party_albums
                for a in range(n_albums):
                    rng = np.random.Generator(np.random.PCG64([args.seed, half, a, fam_code, photos]))
                    al = sample_album(faces, half, rng, targets=targets, photos=photos, per_photo=(3, 12))
                    yield (family, kind, half), al


def sample_all(
    args: argparse.Namespace, params: CohortParams, own: tuple[np.ndarray, float] | None = None
) -> tuple[dict, dict[str, float]]:
    """Candidates of every (family, album kind, half, album), and the selfie refusal rate per family."""
    out: dict = {}
    refusals: dict[str, float] = {}
    wccn = wccn_fit(args) if getattr(args, "wccn", 0) else None
    fuse = getattr(args, "fuse", None)
    p2 = SECOND_COHORT.get(fuse) if fuse else None
    z = getattr(args, "expansion_z", EXPANSION_Z)
    extra = {"dba": getattr(args, "dba", 0), "rivals": getattr(args, "rivals", False), "wccn": wccn}
    for key, al in sampled_albums(args, refusals):
        out.setdefault(key, []).append(candidates(al, params, own, z, p2, **extra))
    for (family, kind, half), albums in out.items():
        print(f"sampled {family} {kind} half {half}: {len(albums)} albums", file=sys.stderr, flush=True)
    return out, refusals


def _concat(cs: list[Candidates], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    return (
        np.concatenate([design(c, names) for c in cs]),
        np.concatenate([c.relevant for c in cs]),
        sum(c.total_relevant for c in cs),
    )


def report(cs: list[Candidates], names: tuple[str, ...], w: np.ndarray, t_match: float, t_possible: float) -> dict:
    """Measures on unseen albums for a fitted model and tier thresholds on its probability."""
    x, rel, total = _concat(cs, names)
    prob = predict(x, w)
    p_m, r_m = pr(prob, rel, total, t_match)
    p_p, _ = pr(prob, rel, total, t_possible, t_match)
    _, r_both = pr(prob, rel, total, t_possible)
    maps = []
    for c in cs:
        maps.append(mean_ap(c, predict(design(c, names), w)))
    returned = prob >= 0.05  # what a search would show at all, weighted by its share of results
    return {
        "R@P0.99": round(recall_at_precision(prob, rel, total, 0.99), 4),
        "R@P0.95": round(recall_at_precision(prob, rel, total, 0.95), 4),
        "mAP": round(float(np.mean(maps)), 4),
        "matches_P": round(p_m, 4),
        "matches_R": round(r_m, 4),
        "possible_P": round(p_p, 4),
        "both_R": round(r_both, 4),
        "ECE": round(expected_calibration_error(prob[returned], rel[returned]), 4),
    }


def mean_ap(c: Candidates, score: np.ndarray) -> float:
    """mAP over the album's queries; relevant photos never returned count as misses."""
    aps = []
    for q, n_rel in enumerate(c.relevant_of):
        m = c.query == q
        order = np.argsort(-score[m], kind="stable")
        aps.append(average_precision(c.relevant[m][order].tolist(), int(n_rel)))
    return float(np.mean(aps)) if aps else 0.0


OWN_EVIDENCE = "query cohort"
WITH_EXPANSION = "query cohort + expansion"


def two_model_report(cs: list[Candidates], own: dict, full: dict) -> dict:
    """Matches decided on the selfie's own evidence; the possible tier, and the confidence, by the full model."""
    own_names, full_names = tuple(own["features"]), tuple(full["features"])
    x_own, rel, total = _concat(cs, own_names)
    x_full, _, _ = _concat(cs, full_names)
    p_own, p_full = predict(x_own, np.array(own["weights"])), predict(x_full, np.array(full["weights"]))
    match = p_own >= own["thresholds"]["match"]
    possible = ~match & (p_full >= full["thresholds"]["possible"])
    tp_m, tp_p = int((match & rel).sum()), int((possible & rel).sum())
    # The ranked list a search shows: matches first, then possible matches, each by the full model.
    maps = []
    for c in cs:
        po = predict(design(c, own_names), np.array(own["weights"])) >= own["thresholds"]["match"]
        pf = predict(design(c, full_names), np.array(full["weights"]))
        maps.append(mean_ap(c, pf + 2.0 * po))
    shown = match | possible
    return {
        "matches_P": round(tp_m / max(1, int(match.sum())), 4),
        "matches_R": round(tp_m / max(1, total), 4),
        "possible_P": round(tp_p / max(1, int(possible.sum())), 4),
        "both_R": round((tp_m + tp_p) / max(1, total), 4),
        "mAP": round(float(np.mean(maps)), 4),
        "ECE_shown": round(expected_calibration_error(p_full[shown], rel[shown]), 4),
        "ECE_candidates": round(expected_calibration_error(p_full[p_full >= 0.05], rel[p_full >= 0.05]), 4),
    }


def study(args: argparse.Namespace) -> dict:
    """Per feature set: one model and one pair of tier thresholds fitted on every fitting-half album."""
    params = CohortParams()
    data, refusals = sample_all(args, params)
    sets = dict(FEATURE_SETS)
    own_name, full_name = OWN_EVIDENCE, WITH_EXPANSION
    if getattr(args, "fuse", None):
        sets |= FUSED_SETS
        own_name, full_name = "fused: query cohort", "fused: query cohort + expansion"
        if getattr(args, "dba", 0):
            sets["fused: + expansion + database-side augmentation"] = DBA_SET
        if getattr(args, "wccn", 0):
            whitened = ("dw", "zw", "dw2", "zw2")
            sets["fused: + expansion + wccn"] = FUSED_SETS["fused: query cohort + expansion"] + whitened
            sets["fused: query cohort + wccn"] = FUSED_SETS["fused: query cohort"] + whitened
            own_name, full_name = "fused: query cohort + wccn", "fused: + expansion + wccn"
        if getattr(args, "rivals", False):
            sets["fused: + expansion + rivals"] = FUSED_SETS["fused: query cohort + expansion"] + (
                "nn1",
                "nn3",
                "log_closer",
                "nn12",
                "nn32",
                "log_closer2",
            )
            sets["fused: + expansion + rival counts"] = FUSED_SETS["fused: query cohort + expansion"] + (
                "log_closer",
                "log_closer2",
            )
    if args.expansion == "matches":
        # Expand with the selfie's own matches: fit that model first, then sample again with it.
        names = sets[own_name]
        fit = [c for (fam, kind, half), cs in data.items() if half == 0 for c in cs]
        x, rel, _ = _concat(fit, names)
        w = fit_logistic(x, rel.astype(np.float64))
        bar = (
            args.expansion_p if args.expansion_p else threshold_for_precision(predict(x, w), rel, args.match_precision)
        )
        own = (names, w, bar)
        data, refusals = sample_all(args, params, own)
    out: dict = {"params": vars(params), "expansion": args.expansion, "selfies_refused": refusals, "feature_sets": {}}
    fit_groups = [cs for (fam, kind, half), cs in data.items() if half == 0]
    # Each (family, album kind) weighs the same in the fit, however many candidates its albums hold.
    balance = np.concatenate(
        [np.full(sum(len(c.query) for c in cs), 1.0 / sum(len(c.query) for c in cs)) for cs in fit_groups]
    )
    for name, names in sets.items():
        fit = [c for cs in fit_groups for c in cs]
        x, rel, _ = _concat(fit, names)
        w = fit_logistic(x, rel.astype(np.float64), sample_weight=balance if args.balanced else None)
        prob = predict(x, w)
        t_match = threshold_for_precision(prob, rel, args.match_precision)
        t_possible = band_threshold(prob, rel, t_match, args.possible_precision)
        if args.possible_every:
            # And every kind of album's band at least this precise, not only all of them pooled: a
            # family party's second tier must not be mostly relatives because crowds' are precise.
            for cs in fit_groups:
                xg, rg, _ = _concat(cs, names)
                t_possible = max(t_possible, band_threshold(predict(xg, w), rg, t_match, args.possible_every))
        res: dict = {
            "features": list(names),
            "weights": [round(float(v), 5) for v in w],
            "thresholds": {"match": round(t_match, 4), "possible": round(t_possible, 4)},
            "unseen": {},
        }
        for (fam, kind, half), cs in data.items():
            if half == 1:
                res["unseen"][f"{fam} {kind}"] = report(cs, names, w, t_match, t_possible)
        out["feature_sets"][name] = res
        for k, v in res["unseen"].items():
            print(f"{name:24s} {k:16s} {json.dumps(v)}", file=sys.stderr, flush=True)
    own, full = out["feature_sets"][own_name], out["feature_sets"][full_name]
    out["two_models"] = {
        "matches": own_name,
        "possible": full_name,
        "unseen": {f"{fam} {kind}": two_model_report(cs, own, full) for (fam, kind, half), cs in data.items() if half},
    }
    for k, v in out["two_models"]["unseen"].items():
        print(f"{'two models':24s} {k:16s} {json.dumps(v)}", file=sys.stderr, flush=True)
    return out


def parser() -> argparse.ArgumentParser:
    """The study's arguments (bench/calibrate.py fits with their defaults)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--albums", type=int, default=3, help="crowd albums per family and half")
    ap.add_argument("--party-albums", type=int, default=12, help="party albums per family and half")
    ap.add_argument("--targets", type=int, default=250)
    ap.add_argument("--photos", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--expansion", choices=("matches", "z"), default="matches", help="which hits expand the query")
    ap.add_argument("--match-precision", type=float, default=0.99, help="pooled precision the match tier is fitted for")
    ap.add_argument("--possible-precision", type=float, default=0.55, help="precision of the second tier's band")
    ap.add_argument("--expansion-z", type=float, default=EXPANSION_Z)
    ap.add_argument(
        "--expansion-p",
        type=float,
        default=SEARCH.expansion_probability,
        help="with --expansion matches: own P a hit needs",
    )
    ap.add_argument("--fuse", help="a second embedder whose cache holds the same faces (identity_cache --also)")
    ap.add_argument(
        "--dba", type=int, default=0, help="with --fuse: also score against faces augmented by K neighbours"
    )
    ap.add_argument("--rivals", action="store_true", help="with --fuse: features of the candidate's own nearest faces")
    ap.add_argument("--wccn", type=float, default=0.0, help="with --fuse: add whitened distances, shrunk by this")
    ap.add_argument(
        "--possible-every", type=float, default=None, help="and each album kind's possible band at least this precise"
    )
    ap.add_argument("--balanced", action="store_true", help="weigh every (family, album kind) equally in the fit")
    return ap


# The study's feature sets that become the product's two models, alone and fused.
SETS = {
    False: (OWN_EVIDENCE, WITH_EXPANSION),
    True: ("fused: query cohort", "fused: query cohort + expansion"),
}


def model_of(fitted: dict[str, Any]) -> Model:
    """A study's fitted feature set as a product model (the study's last weight is the bias)."""
    weights = [float(w) for w in fitted["weights"]]
    return Model(tuple(fitted["features"]), tuple(weights[:-1]), weights[-1])


def calibration_of(out: dict[str, Any], embedders: tuple[str, ...], second: CohortParams | None) -> Calibration:
    """The product calibration from one study run's output."""
    own_name, full_name = SETS[len(embedders) == 2]
    own, full = out["feature_sets"][own_name], out["feature_sets"][full_name]
    return Calibration(
        embedders=embedders,
        own=model_of(own),
        full=model_of(full),
        match=float(own["thresholds"]["match"]),
        possible=float(full["thresholds"]["possible"]),
        cohort=CohortParams(**out["params"]),
        second_cohort=second,
        unseen=out["two_models"]["unseen"],
    )
