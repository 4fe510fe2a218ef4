"""The residual policy's networks, the paper's cVAE and the Table 2 ablations, and their config.

- `cvae` (the paper's): encoder q(z | delta, c), decoder p(delta | z, c), trained on the ELBO with
  a KL weight beta; at test time z = 0 (`sample=False`) or z ~ N(0, I) (`sample=True`).
- `mlp`: an MLP c -> delta (the paper's Table 2 ablation).
- `transformer`: a small transformer encoder over one token for phi(I0) and one per entry of xi
  (its value and a learned embedding of its name); each xi token reads out its own delta entry
  through a head of its own.
- `direct`: an MLP phi(I0) -> xi + delta, the full grasp parameters, without the prior xi as
  input; its residual is the estimate minus xi (entry-wise, like every residual here).

Every model works on normalised inputs and outputs (deft_policy.policy keeps the normalisers).
"""

from dataclasses import asdict, dataclass, field
import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from deft_policy.dataset import DEFAULT_ELITES, FEATURE_KINDS
from deft_policy.features import PROBE_SIZE, RESNET_DIM

MODELS = ('cvae', 'mlp', 'transformer', 'direct')


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
