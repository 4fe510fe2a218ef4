"""
`deft_train_policy`: train the residual policy pi(I0, xi) (or an ablation) on the elites of runs.

    deft_train_policy runs/cup-a runs/cup-b --model cvae --elites 10 --epochs 500 --out cup.pt

Writes the checkpoint (`--out`, default `<first run>/policy_<model>.pt`) and a PNG of the loss
curve next to it (`<out without suffix>.loss.png`). Exit codes: 0 trained, 2 bad arguments or
runs (one line on stderr says why).
"""

import argparse
from pathlib import Path
import sys
import time
from typing import Dict, Optional, Sequence

from deft_policy.dataset import (
    DEFAULT_ELITES,
    FEATURE_CHOICES,
    build_dataset,
    resolve_feature_kind,
    select_elites,
)
from deft_policy.features import ResNetFeatures
from deft_policy.models import MODELS
from deft_policy.policy import config_for, plot_losses, train_policy

PROG = 'deft_train_policy'


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('run_dirs', nargs='+', type=Path, metavar='RUN_DIR',
                   help='run directories of fine-tuning (one per object placement)')
    p.add_argument('--model', choices=MODELS, default='cvae',
                   help='cvae (the policy of the paper) or an ablation of its Table 2')
    p.add_argument('--elites', type=int, default=DEFAULT_ELITES,
                   help='best episodes taken from each run')
    p.add_argument('--epochs', type=int, default=300)
    p.add_argument('--out', type=Path, default=None,
                   help='checkpoint path (default: <first run>/policy_<model>.pt)')
    p.add_argument('--seed', type=int, default=0, help='seed of initialisation and batches')
    p.add_argument('--beta', type=float, default=1.0, help='KL weight of the cVAE')
    p.add_argument('--latent-dim', type=int, default=4, help='size of the cVAE latent z')
    p.add_argument('--hidden', type=int, default=64, help='width of the MLP layers')
    p.add_argument('--d-model', type=int, default=32, help='token width of the transformer')
    p.add_argument('--heads', type=int, default=4, help='attention heads of the transformer')
    p.add_argument('--layers', type=int, default=2, help='layers of the transformer')
    p.add_argument('--lr', type=float, default=3e-3, help='Adam learning rate')
    p.add_argument('--weight-decay', type=float, default=1e-2, help='Adam L2 penalty')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--features', choices=FEATURE_CHOICES, default='auto',
                   help='phi(I0): I0 PNGs through ResNet-18, .phi.npy files, none (xi only), '
                        'or auto (the first the runs have for every elite)')
    p.add_argument('--resnet-weights', default='',
                   help='ResNet-18 state dict for image features (empty: seeded random init)')
    p.add_argument('--image-size', type=int, default=224, help='side of the resized I0')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    p.add_argument('--log-every', type=int, default=0,
                   help='print progress every N epochs (0: about 20 lines in all)')
    p.add_argument('--quiet', action='store_true', help='print only the result')
    return p


def loss_png(out: Path) -> Path:
    """Return the path of the loss-curve PNG written next to a checkpoint."""
    return out.with_name(out.stem + '.loss.png')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train a policy from the command line; return the exit code."""
    try:
        opts = parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed why (exit 2) or the help (exit 0)
        return int(exc.code or 0)

    def fail(msg: str) -> int:
        print(f'{PROG}: error: {msg}', file=sys.stderr)
        return 2

    if opts.threads < 0 or opts.epochs < 1 or opts.elites < 1 or opts.log_every < 0:
        return fail('--threads and --log-every must be >= 0, --epochs and --elites >= 1')
    if opts.threads:
        import torch
        torch.set_num_threads(opts.threads)
    out = opts.out or opts.run_dirs[0] / f'policy_{opts.model}.pt'
    if out.is_dir():
        return fail(f'--out {out} is a directory; give a file name such as {out / "policy.pt"}')
    say = (lambda *a, **k: None) if opts.quiet else print
    start = time.monotonic()
    try:
        extractor = None
        if opts.resnet_weights:  # a bad weights file fails first, naming the file
            extractor = ResNetFeatures(opts.resnet_weights, opts.image_size)
        _, chosen, _ = select_elites(opts.run_dirs, opts.elites)
        kind = resolve_feature_kind(chosen, opts.features)
        if kind == 'image':
            extractor = extractor or ResNetFeatures('', opts.image_size)
        elif extractor is not None:
            say(f'{PROG}: note: features are {kind!r}; --resnet-weights is not used')
            extractor = None
        dataset = build_dataset(opts.run_dirs, opts.elites, kind, extractor)
        cfg = config_for(dataset, opts.model, extractor, hidden=opts.hidden,
                         latent_dim=opts.latent_dim, beta=opts.beta, d_model=opts.d_model,
                         heads=opts.heads, layers=opts.layers, epochs=opts.epochs, lr=opts.lr,
                         weight_decay=opts.weight_decay, batch_size=opts.batch_size,
                         seed=opts.seed, elites=opts.elites)
        say(f'{PROG}: {opts.model} on {len(dataset)} elites of {len(opts.run_dirs)} run(s), '
            f'{cfg.param_dim} parameters, features {dataset.feature_kind} '
            f'({cfg.feature_dim} values)')
        every = opts.log_every or max(1, opts.epochs // 20)

        def progress(epoch: int, epochs: int, loss: float, parts: Dict[str, float]) -> None:
            if epoch % every == 0 or epoch in (1, epochs):
                extra = ''.join(f'  {k} {v:.4f}' for k, v in parts.items())
                say(f'epoch {epoch:>{len(str(epochs))}}/{epochs}  loss {loss:.4f}{extra}',
                    flush=True)

        policy = train_policy(dataset, cfg, extractor, progress)
        out.parent.mkdir(parents=True, exist_ok=True)
        policy.save(out)
        png = plot_losses(policy.losses, loss_png(out),
                          f'{opts.model} on {len(dataset)} elites: training loss')
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    print(f'checkpoint: {out}\nloss curve: {png}\n'
          f'final loss {policy.losses[-1]:.4f} after {opts.epochs} epochs '
          f'({time.monotonic() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
