"""
The residual policy pi(I0, xi) of DEFT and its ablations, trained on the elites of runs.

After fine-tuning, the elite residuals delta of each run (the eps of its E best episodes) say how
the affordance prior xi should be corrected for that object placement. A policy learns this
correction from c = (phi(I0), xi), phi(I0) being features of the episode's initial image, so a
new placement gets its own residual without fine-tuning again. The models (`MODELS`: the
paper's cVAE, and the MLP, transformer and direct-estimate ablations) are in deft_policy.models;
the deterministic ones ignore `sample`. Every model works on normalised inputs and outputs; the
means and scales are part of the checkpoint.

The training set and its image features: deft_policy.dataset, deft_policy.features.

A checkpoint is a `torch.save` of plain values: a JSON config, named float tensors and a SHA-256
over both. `load_policy` reads it with `torch.load(..., weights_only=True)` (never an arbitrary
pickle) and refuses, with a ValueError saying why, a file that is not a checkpoint, whose config
or tensors were altered, or whose parameter names differ from the caller's.
"""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from deft_common.checkpoint import checksum, first_line, read_checkpoint
from deft_common.runs import atomic_write
from deft_policy.dataset import EliteDataset
from deft_policy.features import ResNetFeatures
from deft_policy.models import PolicyConfig, build_model

CHECKPOINT_FORMAT = 'deft_residual_policy'
CHECKPOINT_VERSION = 1
STD_FLOOR = 1e-6         # a constant input or output column is centred, not scaled

ProgressFn = Callable[[int, int, float, Dict[str, float]], None]
SeedLike = Union[None, int, np.random.Generator]


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
