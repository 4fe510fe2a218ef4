"""
The residual policy pi(I0, xi) of DEFT and its ablations, trained on the elites of runs.

After fine-tuning, the elite residuals delta of each run (the eps of its E best episodes) say how
the affordance prior xi should be corrected for that object placement. A policy learns this
correction from c = (phi(I0), xi), phi(I0) being features of the episode's initial image, so a
new placement gets its own residual without fine-tuning again. Models (`MODELS`):

- `cvae` (the paper's): encoder q(z | delta, c), decoder p(delta | z, c), trained on the ELBO with
  a KL weight beta; at test time z = 0 (`sample=False`) or z ~ N(0, I) (`sample=True`).
- `mlp`: an MLP c -> delta (the paper's Table 2 ablation).
- `transformer`: a small transformer encoder over one token for phi(I0) and one per entry of xi
  (its value and a learned embedding of its name); each xi token reads out its own delta entry
  through a head of its own.
- `direct`: an MLP phi(I0) -> xi + delta, the full grasp parameters, without the prior xi as
  input; its residual is the estimate minus xi (entry-wise, like every residual here).

The deterministic models ignore `sample`. Every model works on normalised inputs and outputs; the
means and scales are part of the checkpoint.

The initial image I0 of an episode is not part of its JSON record. It lives next to it, in side
files the episode node writes at the `perceive` phase (before it records the episode), named so
that `RunStore` never mistakes them for records (it reads `episodes/[0-9]*.json` only):

    <run_dir>/episodes/000007.I0.png    RGB image seen before the grasp (`save_initial_image`)
    <run_dir>/episodes/000007.phi.npy   a precomputed feature vector, float, 1-D (`save_features`)

The features of a training set are `image` (phi = ResNet-18 of the I0 PNGs, with weights from a
file or a seeded random initialisation: nothing is downloaded), `file` (the `.phi.npy` vectors, as
computed by whatever encoder wrote them; pass the same kind of vector at test time) or `none`
(c = xi alone: runs without images still train; xi's contact point carries the placement).
`auto` takes `image` if every elite has its PNG, else `file` if every elite has its vector, else
`none`.

A checkpoint is a `torch.save` of plain values: a JSON config, named float tensors and a SHA-256
over both. `load_policy` reads it with `torch.load(..., weights_only=True)` (never an arbitrary
pickle) and refuses, with a ValueError saying why, a file that is not a checkpoint, whose config
or tensors were altered, or whose parameter names differ from the caller's.
"""

from dataclasses import asdict, dataclass, field
import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from deft_cem.checkpoint import checksum, first_line, read_checkpoint
from deft_cem.runs import (  # noqa: F401 (re-exported)
    EpisodeEntry,
    RunSettings,
    RunStore,
    atomic_write,
    features_path,
    image_path,
    load_feature_file,
    load_image,
    save_features,
    save_initial_image,
)

MODELS = ('cvae', 'mlp', 'transformer', 'direct')
FEATURE_KINDS = ('image', 'file', 'none')
FEATURE_CHOICES = ('auto',) + FEATURE_KINDS
CHECKPOINT_FORMAT = 'deft_residual_policy'
CHECKPOINT_VERSION = 1
DEFAULT_ELITES = 10
RESNET_DIM = 512
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROBE_SIZE = 16          # feature values of a fixed probe image kept to check the extractor
STD_FLOOR = 1e-6         # a constant input or output column is centred, not scaled

ProgressFn = Callable[[int, int, float, Dict[str, float]], None]
SeedLike = Union[None, int, np.random.Generator]


# --- side files of an episode: deft_cem.runs (no torch, so the episode node stays light) ---


# --- image features phi(I0) ----------------------------------------------------------------
def probe_image(size: int = 64) -> np.ndarray:
    """Return a fixed synthetic RGB image used to fingerprint a feature extractor."""
    u, v = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size))
    rgb = np.stack([u, v, 0.5 + 0.5 * np.sin(6 * np.pi * u * v)], axis=-1)
    return (255 * rgb).round().astype(np.uint8)


class ResNetFeatures:
    """
    phi(I0): ResNet-18 global-pooled features (512) of the whole frame, resized to a square.

    The frame is resized without cropping so the object's placement stays in view. `weights` is a
    path to a torchvision ResNet-18 state dict (read with weights_only=True; an `fc.*` head is
    ignored); empty means a random initialisation seeded by `init_seed`, reproducible on the same
    torch version: an honest stand-in where no pretrained weights are available.
    """

    dim = RESNET_DIM

    def __init__(self, weights: str = '', image_size: int = 224, init_seed: int = 0):
        import torchvision

        if image_size < 32:
            raise ValueError(f'image_size {image_size} is too small for ResNet-18 (>= 32)')
        self.weights, self.image_size, self.init_seed = str(weights or ''), image_size, init_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = torchvision.models.resnet18(weights=None)
        net.fc = nn.Identity()
        if self.weights:
            try:
                net.load_state_dict(_resnet_state(Path(self.weights)))
            except RuntimeError as exc:
                raise ValueError(f'{self.weights} does not fit ResNet-18: '
                                 f'{first_line(exc)}') from exc
        self.net = net.eval()

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        """Return an (n, 512) array of features of H x W x 3 uint8 RGB images."""
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out = []
        for k in range(0, len(images), batch):
            xs = []
            for img in images[k:k + batch]:
                img = np.asarray(img)
                if img.ndim != 3 or img.shape[2] != 3:
                    raise ValueError(f'expected an H x W x 3 RGB image, got shape {img.shape}')
                x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
                xs.append(nn.functional.interpolate(
                    x, size=(self.image_size, self.image_size), mode='bilinear',
                    align_corners=False, antialias=True))
            out.append(self.net((torch.cat(xs) - mean) / std).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))

    def probe(self) -> List[float]:
        """Return the first features of the probe image: a fingerprint of these weights."""
        return [float(v) for v in self([probe_image()])[0, :PROBE_SIZE]]


def _resnet_state(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f'ResNet-18 weights {path} not found')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        raise ValueError(f'{path} is not a ResNet-18 state dict: {first_line(exc)}') from exc
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path} is not a ResNet-18 state dict (a dict of tensors)')
    return {k: v for k, v in state.items() if not k.startswith('fc.')}


# --- the training set ------------------------------------------------------------------------
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


# --- configuration ---------------------------------------------------------------------------
@dataclass
class PolicyConfig:
    """Everything that fixes a policy's shape and training; JSON-able, validated."""

    model: str
    parameter_names: List[str]
    feature_kind: str = 'none'
    feature_dim: int = 0
    hidden: int = 64
    latent_dim: int = 4
    beta: float = 1.0
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    seed: int = 0
    elites: int = DEFAULT_ELITES
    image_size: int = 224
    resnet_weights: str = ''
    resnet_init_seed: int = 0
    feature_probe: List[float] = field(default_factory=list)
    sources: List[str] = field(default_factory=list)

    def __post_init__(self):
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        need(self.model in MODELS, f'model {self.model!r} is not one of {", ".join(MODELS)}')
        need(isinstance(self.parameter_names, list) and len(self.parameter_names) > 0 and
             all(isinstance(n, str) and n for n in self.parameter_names) and
             len(set(self.parameter_names)) == len(self.parameter_names),
             'parameter_names must be a non-empty list of distinct names')
        need(self.feature_kind in FEATURE_KINDS,
             f'feature_kind {self.feature_kind!r} is not one of {", ".join(FEATURE_KINDS)}')
        for name in ('feature_dim', 'hidden', 'latent_dim', 'd_model', 'heads', 'layers',
                     'epochs', 'batch_size', 'seed', 'elites', 'image_size', 'resnet_init_seed'):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool),
                 f'{name} must be an integer, got {value!r}')
        need((self.feature_dim == 0) == (self.feature_kind == 'none'),
             f'feature_dim {self.feature_dim} does not fit feature_kind {self.feature_kind!r}')
        need(self.feature_kind != 'image' or self.feature_dim == RESNET_DIM,
             f'image features have {RESNET_DIM} dimensions, not {self.feature_dim}')
        need(self.feature_dim >= 0, 'feature_dim must be >= 0')
        need(self.model != 'direct' or self.feature_dim > 0,
             'model "direct" estimates the grasp parameters from phi(I0) alone and needs image '
             'features; these runs have none (no I0 PNG or feature file per elite)')
        for name in ('hidden', 'latent_dim', 'd_model', 'heads', 'layers', 'epochs',
                     'batch_size', 'elites'):
            need(getattr(self, name) >= 1, f'{name} must be >= 1, got {getattr(self, name)}')
        need(self.d_model % self.heads == 0,
             f'd_model ({self.d_model}) must be a multiple of heads ({self.heads})')
        for name in ('beta', 'lr', 'weight_decay'):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and
                 math.isfinite(value) and value >= 0, f'{name} must be finite and >= 0')
        need(self.lr > 0, 'lr must be > 0')
        need(self.image_size >= 32, 'image_size must be >= 32')
        need(isinstance(self.resnet_weights, str), 'resnet_weights must be a path string')
        need(isinstance(self.feature_probe, list) and
             all(isinstance(v, (int, float)) for v in self.feature_probe),
             'feature_probe must be a list of numbers')
        need(self.feature_kind != 'image' or len(self.feature_probe) == PROBE_SIZE,
             f'image features need a probe of {PROBE_SIZE} values')
        need(isinstance(self.sources, list) and all(isinstance(s, str) for s in self.sources),
             'sources must be a list of strings')

    @property
    def param_dim(self) -> int:
        """Return the number of grasp parameters P (the size of xi and delta)."""
        return len(self.parameter_names)

    @property
    def stochastic(self) -> bool:
        """Return whether predictions can be sampled (only the cVAE has a latent)."""
        return self.model == 'cvae'

    def to_json(self) -> str:
        """Return the config as canonical JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> 'PolicyConfig':
        """Parse and validate a config; ValueError naming unknown or missing keys."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'config is not JSON: {exc}') from exc
        if not isinstance(data, dict):
            raise ValueError('config is not a JSON object')
        known = set(PolicyConfig.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'config has unknown keys {unknown}')
        try:
            return PolicyConfig(**data)
        except TypeError as exc:
            raise ValueError(f'config is incomplete: {exc}') from exc


# --- the models --------------------------------------------------------------------------------
def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: List[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class CVAE(nn.Module):
    """Residual cVAE: q(z | delta, c) and p(delta | z, c), Gaussian, unit-variance decoder."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        c, p, h, z = cfg.feature_dim + cfg.param_dim, cfg.param_dim, cfg.hidden, cfg.latent_dim
        self.latent_dim, self.beta = z, cfg.beta
        self.encoder = _mlp([p + c, h, h, 2 * z])
        self.decoder = _mlp([z + c, h, h, p])

    def forward(self, phi: torch.Tensor, xi: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Decode delta (normalised) from z and c."""
        return self.decoder(torch.cat([z, phi, xi], dim=-1))

    def loss(self, phi, xi, target, generator) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Return the negative ELBO (recon + beta * KL, per sample) and its parts."""
        mu, logvar = self.encoder(torch.cat([target, phi, xi], dim=-1)).chunk(2, dim=-1)
        logvar = logvar.clamp(-10.0, 10.0)
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * noise
        recon = ((self(phi, xi, z) - target) ** 2).sum(-1).mean()
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).sum(-1).mean()
        return recon + self.beta * kl, {'recon': recon.item(), 'kl': kl.item()}


class MLPPolicy(nn.Module):
    """Ablation: an MLP from c = (phi, xi) to delta."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        h = cfg.hidden
        self.net = _mlp([cfg.feature_dim + cfg.param_dim, h, h, cfg.param_dim])

    def forward(self, phi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """Return delta (normalised)."""
        return self.net(torch.cat([phi, xi], dim=-1))


class TransformerPolicy(nn.Module):
    """Ablation: a transformer encoder over tokens [phi(I0), xi_1 .. xi_P]; token j -> delta_j."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        d = cfg.d_model
        self.value = nn.Linear(1, d)
        self.names = nn.Parameter(0.02 * torch.randn(cfg.param_dim, d))
        self.image = nn.Linear(cfg.feature_dim, d) if cfg.feature_dim else None
        layer = nn.TransformerEncoderLayer(d, cfg.heads, dim_feedforward=2 * d, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        # one read-out per parameter: delta_j = w_j . h_j + b_j
        self.head_weight = nn.Parameter(torch.randn(cfg.param_dim, d) / math.sqrt(d))
        self.head_bias = nn.Parameter(torch.zeros(cfg.param_dim))

    def forward(self, phi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """Return delta (normalised)."""
        tokens = self.value(xi.unsqueeze(-1)) + self.names
        if self.image is not None:
            tokens = torch.cat([self.image(phi).unsqueeze(1), tokens], dim=1)
        out = self.encoder(tokens)[:, -xi.shape[1]:]
        return (out * self.head_weight).sum(-1) + self.head_bias


class DirectPolicy(nn.Module):
    """Ablation: an MLP from phi(I0) alone to the full grasp parameters xi + delta."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        h = cfg.hidden
        self.net = _mlp([cfg.feature_dim, h, h, cfg.param_dim])

    def forward(self, phi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """Return xi + delta (normalised); xi is not an input."""
        return self.net(phi)


MODEL_CLASSES = {'cvae': CVAE, 'mlp': MLPPolicy, 'transformer': TransformerPolicy,
                 'direct': DirectPolicy}


def build_model(cfg: PolicyConfig, seed: Optional[int] = None) -> nn.Module:
    """Build the network of a config (initialised from `seed`, default cfg.seed), in float32."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed if seed is None else seed)
        return MODEL_CLASSES[cfg.model](cfg).float()


# --- normalisation -----------------------------------------------------------------------------
@dataclass
class Normalizer:
    """Per-column affine map x -> (x - mean) / scale; a constant column is only centred."""

    mean: np.ndarray
    scale: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, floor: Optional[np.ndarray] = None) -> 'Normalizer':
        """
        Fit to the columns of x (n, d): scale = max(std, floor).

        The floor keeps a column that varies less than it matters (e.g. perception noise on
        a wrist angle, well below the CEM search std) from being blown up to unit variance.
        """
        x = np.asarray(x, dtype=float)
        if x.shape[1] == 0:
            return Normalizer(np.zeros(0), np.ones(0))
        std = x.std(axis=0)
        if floor is not None and np.size(floor):
            std = np.maximum(std, np.asarray(floor, dtype=float))
        return Normalizer(x.mean(axis=0), np.where(std < STD_FLOOR, 1.0, std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Map values to normalised ones."""
        return (np.asarray(x, dtype=float) - self.mean) / self.scale

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Map normalised values back."""
        return np.asarray(y, dtype=float) * self.scale + self.mean


NORMALIZERS = ('features', 'xi', 'target')


# --- the policy ----------------------------------------------------------------------------
def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class ResidualPolicy:
    """pi(I0, xi) -> delta: a trained model with its config, normalisers and feature extractor."""

    def __init__(self, config: PolicyConfig, model: nn.Module, norms: Dict[str, Normalizer],
                 losses: Sequence[float] = (), extractor: Optional[ResNetFeatures] = None):
        self.config, self.model, self.norms = config, model.eval(), norms
        self.losses = [float(v) for v in losses]
        self.extractor = extractor

    @property
    def parameter_names(self) -> List[str]:
        """Return the names of the grasp parameters, in the order of xi and delta."""
        return list(self.config.parameter_names)

    @property
    def stochastic(self) -> bool:
        """Return whether `sample=True` draws different residuals (cVAE only)."""
        return self.config.stochastic

    def features(self, image: np.ndarray) -> np.ndarray:
        """Return phi(I0) of an H x W x 3 uint8 RGB image with the training's extractor."""
        if self.config.feature_kind != 'image' or self.extractor is None:
            raise ValueError(f'this policy was trained on {self.config.feature_kind!r} '
                             'features, not on images')
        return self.extractor([image])[0]

    def _inputs(self, image_features, xi) -> Tuple[np.ndarray, np.ndarray, bool]:
        cfg = self.config
        xi = np.asarray(xi, dtype=float)
        single = xi.ndim == 1
        xi = np.atleast_2d(xi)
        if xi.ndim != 2 or xi.shape[1] != cfg.param_dim or not np.all(np.isfinite(xi)):
            raise ValueError(f'xi must be finite with {cfg.param_dim} entries '
                             f'({", ".join(cfg.parameter_names)}), got shape {xi.shape}')
        if cfg.feature_dim == 0:
            if image_features is not None and np.size(image_features) > 0:
                raise ValueError('this policy uses no image features; pass image_features=None')
            return np.zeros((len(xi), 0)), xi, single
        if image_features is None:
            raise ValueError(f'this policy needs {cfg.feature_kind} features phi(I0) '
                             f'({cfg.feature_dim} values)')
        phi = np.atleast_2d(np.asarray(image_features, dtype=float))
        if phi.shape != (len(xi), cfg.feature_dim) or not np.all(np.isfinite(phi)):
            raise ValueError(f'image_features must be finite, shape ({len(xi)}, '
                             f'{cfg.feature_dim}) or ({cfg.feature_dim},); got {phi.shape}')
        return phi, xi, single

    @torch.no_grad()
    def predict(self, image_features: Optional[np.ndarray], xi: np.ndarray, sample: bool = False,
                seed: SeedLike = None) -> np.ndarray:
        """
        Return the residual delta for c = (phi(I0), xi): shape (P,), or (n, P) for batches.

        `image_features` is phi(I0) (see `features`), or None for a policy without features.
        For the cVAE, `sample=False` decodes z = 0 and `sample=True` draws z ~ N(0, I) from
        `seed` (an int or a numpy Generator; None: fresh entropy). Other models ignore both.
        """
        phi, xi, single = self._inputs(image_features, xi)
        phi_t = torch.as_tensor(self.norms['features'](phi), dtype=torch.float32)
        xi_t = torch.as_tensor(self.norms['xi'](xi), dtype=torch.float32)
        if self.config.model == 'cvae':
            z = np.zeros((len(xi), self.config.latent_dim))
            if sample:
                z = _rng(seed).standard_normal(z.shape)
            out = self.model(phi_t, xi_t, torch.as_tensor(z, dtype=torch.float32))
        else:
            out = self.model(phi_t, xi_t)
        y = self.norms['target'].inverse(out.double().numpy())
        delta = y - xi if self.config.model == 'direct' else y
        return delta[0] if single else delta

    def residual(self, xi: np.ndarray, image: Optional[np.ndarray] = None,
                 features: Optional[np.ndarray] = None, sample: bool = False,
                 seed: SeedLike = None) -> np.ndarray:
        """Return eps for one episode from its I0 (image) or precomputed features, and xi."""
        if image is not None and features is not None:
            raise ValueError('give the image or its features, not both')
        if image is not None:
            features = self.features(image)
        return self.predict(features, xi, sample=sample, seed=seed)

    def check_parameter_names(self, names: Sequence[str]) -> None:
        """Raise ValueError unless the policy's parameter names are exactly `names`."""
        names, mine = list(names), self.parameter_names
        if names != mine:
            missing = [n for n in mine if n not in names]
            extra = [n for n in names if n not in mine]
            detail = (f'missing {missing}, extra {extra}' if missing or extra
                      else 'same names, other order')
            raise ValueError(f'the policy was trained on parameters {mine}; these are {names} '
                             f'({detail})')

    # --- checkpoint ------------------------------------------------------------------------
    def tensors(self) -> Dict[str, torch.Tensor]:
        """Return every tensor of the checkpoint, by name (model weights and normalisers)."""
        out = {'model.' + k: v.detach().clone().float()
               for k, v in self.model.state_dict().items()}
        for name in NORMALIZERS:
            out[f'norm.{name}.mean'] = torch.as_tensor(self.norms[name].mean, dtype=torch.float64)
            out[f'norm.{name}.scale'] = torch.as_tensor(self.norms[name].scale,
                                                        dtype=torch.float64)
        out['losses'] = torch.as_tensor(self.losses, dtype=torch.float64)
        return out

    def save(self, path: Path) -> Path:
        """Write the checkpoint (plain values only) atomically; return its path."""
        config = self.config.to_json()
        tensors = self.tensors()
        payload = {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION,
                   'config': config, 'tensors': tensors,
                   'checksum': checksum(config, tensors)}
        return atomic_write(Path(path), lambda f: torch.save(payload, f))


def load_policy(path: Path, parameter_names: Optional[Sequence[str]] = None,
                resnet_weights: Optional[str] = None) -> ResidualPolicy:
    """
    Load a checkpoint written by `ResidualPolicy.save`, safely; ValueError saying what is wrong.

    `parameter_names`: those of the caller (the episode node's ParameterSpace.names or a run's);
    a mismatch is refused. `resnet_weights` overrides the weights path stored in the checkpoint
    (the file may live elsewhere on the robot); the rebuilt extractor must reproduce the
    fingerprint recorded at training time.
    """
    path = Path(path)
    config, tensors = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, 'policy')
    try:
        cfg = PolicyConfig.from_json(config)
    except ValueError as exc:
        raise ValueError(f'{path}: invalid config: {exc}') from exc
    policy = _restore(path, cfg, tensors, resnet_weights)
    if parameter_names is not None:
        policy.check_parameter_names(parameter_names)
    return policy


def _restore(path: Path, cfg: PolicyConfig, tensors: Dict[str, torch.Tensor],
             resnet_weights: Optional[str]) -> ResidualPolicy:
    model = build_model(cfg)
    state = {k[len('model.'):]: v for k, v in tensors.items() if k.startswith('model.')}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f'{path}: weights do not fit the config: {first_line(exc)}') from exc
    norms = {}
    dims = {'features': cfg.feature_dim, 'xi': cfg.param_dim, 'target': cfg.param_dim}
    for name in NORMALIZERS:
        mean = tensors.get(f'norm.{name}.mean')
        scale = tensors.get(f'norm.{name}.scale')
        if mean is None or scale is None or tuple(mean.shape) != (dims[name],) or \
                tuple(scale.shape) != (dims[name],) or not torch.all(torch.isfinite(mean)) or \
                not torch.all(scale > 0):
            raise ValueError(f'{path}: normaliser {name!r} is missing or malformed')
        norms[name] = Normalizer(mean.double().numpy(), scale.double().numpy())
    if not all(torch.all(torch.isfinite(v)) for v in state.values()):
        raise ValueError(f'{path}: weights are not finite')
    losses = tensors.get('losses', torch.zeros(0)).double().flatten().tolist()
    extractor = None
    if cfg.feature_kind == 'image':
        weights = cfg.resnet_weights if resnet_weights is None else resnet_weights
        extractor = ResNetFeatures(weights, cfg.image_size, cfg.resnet_init_seed)
        if not np.allclose(extractor.probe(), cfg.feature_probe, rtol=1e-3, atol=1e-4):
            raise ValueError(f'{path}: the image feature extractor (ResNet-18 weights '
                             f'{weights or "random init"!r}) is not the one the policy was '
                             'trained with; pass the same weights file')
    return ResidualPolicy(cfg, model, norms, losses, extractor)


# --- training ------------------------------------------------------------------------------
def train_policy(dataset: EliteDataset, config: PolicyConfig,
                 extractor: Optional[ResNetFeatures] = None,
                 progress: Optional[ProgressFn] = None) -> ResidualPolicy:
    """
    Fit a policy to a dataset with Adam; deterministic for a given config.seed on the CPU.

    `config` gives the model and hyper-parameters; its parameter names, feature kind and
    dimension must match the dataset (`config_for` fills them). `progress(epoch, epochs, loss,
    parts)` is called after every epoch with the mean loss per sample.
    """
    cfg = config
    if list(dataset.parameter_names) != cfg.parameter_names:
        raise ValueError('config and dataset have different parameter names')
    if dataset.feature_kind != cfg.feature_kind or dataset.features.shape[1] != cfg.feature_dim:
        raise ValueError(f'config expects {cfg.feature_kind} features of {cfg.feature_dim} '
                         f'values; the dataset has {dataset.feature_kind} of '
                         f'{dataset.features.shape[1]}')
    if len(dataset) < 2:
        raise ValueError(f'need at least 2 elite episodes to train, got {len(dataset)}')
    target = dataset.xi + dataset.delta if cfg.model == 'direct' else dataset.delta
    floor = dataset.search_std
    norms = {'features': Normalizer.fit(dataset.features),
             'xi': Normalizer.fit(dataset.xi, floor), 'target': Normalizer.fit(target, floor)}
    phi = torch.as_tensor(norms['features'](dataset.features), dtype=torch.float32)
    xi = torch.as_tensor(norms['xi'](dataset.xi), dtype=torch.float32)
    y = torch.as_tensor(norms['target'](target), dtype=torch.float32)

    model = build_model(cfg).train()
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(dataset)
    losses: List[float] = []
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=generator)
        total, parts_sum = 0.0, {}
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            if cfg.model == 'cvae':
                loss, parts = model.loss(phi[idx], xi[idx], y[idx], generator)
            else:
                loss = ((model(phi[idx], xi[idx]) - y[idx]) ** 2).sum(-1).mean()
                parts = {}
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v * len(idx)
        mean = total / n
        if not math.isfinite(mean):
            raise ValueError(f'training diverged at epoch {epoch} (loss {mean}); lower --lr')
        losses.append(mean)
        if progress is not None:
            progress(epoch, cfg.epochs, mean, {k: v / n for k, v in parts_sum.items()})
    return ResidualPolicy(cfg, model, norms, losses, extractor)


def config_for(dataset: EliteDataset, model: str,
               extractor: Optional[ResNetFeatures] = None, **hyper) -> PolicyConfig:
    """Return a validated config for a dataset: its names and features, plus hyper-parameters."""
    extra = {}
    if dataset.feature_kind == 'image':
        if extractor is None:
            raise ValueError('image features need the extractor that computed them')
        extra = dict(image_size=extractor.image_size, resnet_weights=extractor.weights,
                     resnet_init_seed=extractor.init_seed, feature_probe=extractor.probe())
    return PolicyConfig(model=model, parameter_names=list(dataset.parameter_names),
                        feature_kind=dataset.feature_kind,
                        feature_dim=int(dataset.features.shape[1]),
                        sources=list(dataset.sources), **extra, **hyper)


def plot_losses(losses: Sequence[float], path: Path, title: str) -> Path:
    """Write a PNG of the training loss per epoch (log scale when positive)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        ax.plot(np.arange(1, len(losses) + 1), losses, color='tab:blue', lw=1.5)
        if len(losses) and min(losses) > 0:
            ax.set_yscale('log')
        ax.set_xlabel('epoch')
        ax.set_ylabel('training loss per sample')
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)
