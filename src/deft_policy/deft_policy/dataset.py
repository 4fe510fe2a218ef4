"""The residual policy's training set: the elite episodes of runs, c = (phi(I0), xi) -> delta.

The initial image I0 of an episode is not part of its JSON record. It lives next to it, in side
files the episode node writes at the `perceive` phase (deft_common.runs), named so that
`RunStore` never mistakes them for records (it reads `episodes/[0-9]*.json` only):

    <run_dir>/episodes/000007.I0.png    RGB image seen before the grasp (`save_initial_image`)
    <run_dir>/episodes/000007.phi.npy   a precomputed feature vector, float, 1-D (`save_features`)

The features of a training set are `image` (phi = ResNet-18 of the I0 PNGs, with weights from a
file or a seeded random initialisation: nothing is downloaded), `file` (the `.phi.npy` vectors, as
computed by whatever encoder wrote them; pass the same kind of vector at test time) or `none`
(c = xi alone: runs without images still train; xi's contact point carries the placement).
`auto` takes `image` if every elite has its PNG, else `file` if every elite has its vector, else
`none`.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deft_common.runs import (
    EpisodeEntry,
    RunSettings,
    RunStore,
    features_path,
    image_path,
    load_feature_file,
    load_image,
)
from deft_policy.features import ResNetFeatures

DEFAULT_ELITES = 10
FEATURE_KINDS = ('image', 'file', 'none')
FEATURE_CHOICES = ('auto',) + FEATURE_KINDS


@dataclass
class Elite:
    """One elite episode of a run: where it comes from and what it teaches."""

    run_dir: Path
    run_id: str
    entry: EpisodeEntry

    @property
    def image(self) -> Path:
        """Return the path of the episode's I0 PNG (it may not exist)."""
        return image_path(self.run_dir, self.entry.episode)

    @property
    def feature_file(self) -> Path:
        """Return the path of the episode's feature vector (it may not exist)."""
        return features_path(self.run_dir, self.entry.episode)


@dataclass
class EliteDataset:
    """Arrays of the elites of one or more runs: c = (features, xi) -> delta."""

    parameter_names: List[str]
    feature_kind: str
    features: np.ndarray   # (n, F), F = 0 for feature_kind 'none'
    xi: np.ndarray         # (n, P)
    delta: np.ndarray      # (n, P)
    rewards: np.ndarray    # (n,)
    sources: List[str]     # 'run_id:episode' per row
    search_std: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (P,) or empty

    def __len__(self) -> int:
        return len(self.rewards)


def open_run(run_dir: Path) -> Tuple[RunStore, RunSettings, List[EpisodeEntry]]:
    """Return (store, settings, episodes) of a run directory; FileNotFoundError / ValueError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f'run directory {run_dir} not found')
    store = RunStore(run_dir.parent, run_dir.name)
    settings = store.settings()
    names = list(settings.parameter_names)
    entries = store.episodes()
    for e in entries:
        if len(e.xi) != len(names) or len(e.eps) != len(names):
            raise ValueError(f'{run_dir}: episode {e.episode} has {len(e.xi)} xi / {len(e.eps)} '
                             f'eps values; the run has {len(names)} parameters')
    return store, settings, entries


def select_elites(run_dirs: Sequence[Path], elites: int = DEFAULT_ELITES
                  ) -> Tuple[List[str], List[Elite], np.ndarray]:
    """
    Return (parameter names, elites, search std): the `elites` best episodes of every run.

    Elites come run by run, best first. The search std is the runs' mean initial_std, the
    scale on which CEM explored each parameter (empty if a run does not give one per name).

    Ties in reward keep the earlier episode. Each run needs at least `elites` finished episodes
    and the same parameter names as the others (ValueError otherwise).
    """
    if elites < 1:
        raise ValueError(f'elites must be >= 1, got {elites}')
    if not run_dirs:
        raise ValueError('give at least one run directory')
    names: Optional[List[str]] = None
    out: List[Elite] = []
    stds = []
    for run_dir in run_dirs:
        store, settings, entries = open_run(run_dir)
        run_names = list(settings.parameter_names)
        stds.append(np.asarray(settings.initial_std, dtype=float))
        if names is None:
            names = run_names
        elif run_names != names:
            raise ValueError(f'{run_dir} has parameters {run_names}; {run_dirs[0]} has {names}')
        if len(entries) < elites:
            raise ValueError(f'{run_dir} has {len(entries)} finished episodes; '
                             f'{elites} elites need at least as many')
        best = sorted(entries, key=lambda e: (-e.reward, e.episode))[:elites]
        out += [Elite(Path(run_dir), store.run_id, e) for e in best]
    usable = all(s.shape == (len(names),) and np.all(np.isfinite(s)) for s in stds)
    search_std = np.abs(np.mean(stds, axis=0)) if usable else np.zeros(0)
    return names, out, search_std


def resolve_feature_kind(elites: Sequence[Elite], kind: str = 'auto') -> str:
    """Return the feature kind to use; ValueError if an asked-for kind lacks its side files."""
    if kind not in FEATURE_CHOICES:
        raise ValueError(f'features {kind!r} is not one of {", ".join(FEATURE_CHOICES)}')
    has_images = all(e.image.is_file() for e in elites)
    has_files = all(e.feature_file.is_file() for e in elites)
    if kind == 'auto':
        return 'image' if has_images else 'file' if has_files else 'none'
    missing = {'image': [e for e in elites if not e.image.is_file()],
               'file': [e for e in elites if not e.feature_file.is_file()]}.get(kind, [])
    if missing:
        where = missing[0].image if kind == 'image' else missing[0].feature_file
        raise ValueError(f'features {kind!r}: {len(missing)} of {len(elites)} elites have no '
                         f'side file (first missing: {where})')
    return kind


def build_dataset(run_dirs: Sequence[Path], elites: int = DEFAULT_ELITES,
                  features: str = 'auto',
                  extractor: Optional[ResNetFeatures] = None) -> EliteDataset:
    """Build the training set from the top `elites` episodes of each run (see the module doc)."""
    names, chosen, search_std = select_elites([Path(d) for d in run_dirs], elites)
    kind = resolve_feature_kind(chosen, features)
    if kind == 'image':
        extractor = extractor or ResNetFeatures()
        feats = extractor([load_image(e.image) for e in chosen])
    elif kind == 'file':
        vectors = [load_feature_file(e.feature_file) for e in chosen]
        dims = {v.size for v in vectors}
        if len(dims) != 1:
            raise ValueError(f'feature vectors of the elites differ in size: {sorted(dims)}')
        feats = np.stack(vectors)
    else:
        feats = np.zeros((len(chosen), 0))
    return EliteDataset(
        parameter_names=names, feature_kind=kind, features=feats,
        xi=np.array([e.entry.xi for e in chosen], dtype=float),
        delta=np.array([e.entry.eps for e in chosen], dtype=float),
        rewards=np.array([e.entry.reward for e in chosen], dtype=float),
        sources=[f'{e.run_id}:{e.entry.episode}' for e in chosen], search_std=search_std)
