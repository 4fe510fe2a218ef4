"""
Train the DEFT affordance model on a dataset directory (format: `deft_affordance.dataset`).

    deft_train_affordance DATA_DIR --out model.pt --epochs 20 --batch-size 16 --lr 1e-4 \
        --backbone resnet18 --backbone-weights resnet18.pth \
        --clip-model ViT-B-32 --clip-weights open_clip_pytorch_model.bin

Samples of split "train" (or without a split) train the model; those of split "val" are
evaluated after every epoch. The checkpoint is written after every epoch (atomically, so an
interrupted run keeps the last finished epoch) and the per-epoch losses and metrics go to a CSV
beside it (model.pt -> model.csv). Nothing is downloaded: pretrained parts come from paths, or are
random with --allow-random (a dry run: such a model predicts nothing useful). Bad input exits with
status 2 and one line saying what is wrong.
"""

import argparse
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

PROG = 'deft_train_affordance'


def csv_path(out: Path) -> Path:
    """Return the CSV log written beside a checkpoint."""
    return Path(out).with_suffix('.csv')


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    from deft_affordance.network import BACKBONES

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('data_dir', type=Path, help='dataset directory holding manifest.jsonl')
    p.add_argument('--out', type=Path, required=True, help='checkpoint to write (.pt)')
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--lr', type=float, default=1e-4, help='AdamW learning rate (cosine decay)')
    p.add_argument('--weight-decay', type=float, default=1e-4)
    p.add_argument('--backbone', choices=BACKBONES, default='resnet18')
    p.add_argument('--backbone-weights', default='',
                   help='torchvision ResNet state dict, or R3M model.pt for r3m')
    p.add_argument('--freeze-backbone', action='store_true', help='train the heads only')
    p.add_argument('--clip-model', default='ViT-B-32',
                   help='open_clip model name, or the path of an open_clip model config .json')
    p.add_argument('--clip-weights', default='',
                   help='CLIP state dict (.pt/.bin/.safetensors) of --clip-model')
    p.add_argument('--allow-random', action='store_true',
                   help='randomly initialise parts without weights (tests, dry runs only)')
    p.add_argument('--image-size', type=int, default=224, help='model input side (x32)')
    p.add_argument('--num-contacts', type=int, default=5, help='K contact points predicted')
    p.add_argument('--d-model', type=int, default=256, help='transformer width')
    p.add_argument('--layers', type=int, default=2, help='transformer encoder layers')
    p.add_argument('--heads', type=int, default=4, help='transformer attention heads')
    p.add_argument('--deconv-channels', type=int, default=256)
    p.add_argument('--augment', action='store_true', help='photometric jitter of the crops')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cpu', help="torch device ('cpu', 'cuda:0')")
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train from the command line; return the exit code."""
    try:
        opts = parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed why (exit 2) or the help (exit 0)
        return int(exc.code or 0)

    def fail(msg: str) -> int:
        print(f'{PROG}: error: {msg}', file=sys.stderr)
        return 2

    if opts.epochs < 1 or opts.batch_size < 1 or opts.threads < 0:
        return fail('--epochs and --batch-size must be >= 1, --threads >= 0')
    if not opts.lr > 0 or opts.lr == float('inf') or not opts.weight_decay >= 0:
        return fail('--lr must be a finite number > 0 and --weight-decay >= 0')
    if opts.out.is_dir():
        return fail(f'--out {opts.out} is a directory; give a file name such as '
                    f'{opts.out / "affordance.pt"}')
    import torch

    from deft_affordance.dataset import AffordanceDataset, read_manifest, select_split
    from deft_affordance.model import AffordanceModel, check_device
    from deft_affordance.training import fit

    if opts.threads:
        torch.set_num_threads(opts.threads)
    start = time.monotonic()
    try:
        check_device(opts.device)
        samples = read_manifest(opts.data_dir)
        train, val = select_split(samples, 'train'), select_split(samples, 'val')
        if not train:
            raise ValueError(f'{opts.data_dir}: no samples of split "train" (or without split)')
        for name in ('backbone_weights', 'clip_weights'):
            path = getattr(opts, name)
            if path and not Path(path).is_file():
                raise ValueError(f'--{name.replace("_", "-")} {path} not found')
        model = AffordanceModel.build(
            opts.backbone, opts.backbone_weights, opts.clip_model, opts.clip_weights,
            allow_random=opts.allow_random, device=opts.device, image_size=opts.image_size,
            num_contacts=opts.num_contacts, d_model=opts.d_model, layers=opts.layers,
            heads=opts.heads, deconv_channels=opts.deconv_channels,
            freeze_backbone=opts.freeze_backbone, init_seed=opts.seed)
        model.config.info = {'data_dir': str(opts.data_dir), 'train_samples': len(train),
                             'val_samples': len(val), 'epochs': opts.epochs,
                             'batch_size': opts.batch_size, 'lr': opts.lr}
        if not opts.backbone_weights or not opts.clip_weights:
            print(f'{PROG}: note: random weights for '
                  + ' and '.join(n for n, w in (('the backbone', opts.backbone_weights),
                                                ('the CLIP text tower', opts.clip_weights))
                                 if not w) + ' (--allow-random): a dry run', file=sys.stderr)
        print(f'{PROG}: {len(train)} training / {len(val)} validation samples, '
              f'{opts.backbone} at {opts.image_size} px, K = {opts.num_contacts}, '
              f'CLIP {opts.clip_model}', flush=True)
        train_ds = AffordanceDataset(train, opts.image_size, augment=opts.augment,
                                     seed=opts.seed)
        val_ds = AffordanceDataset(val, opts.image_size) if val else None
        opts.out.parent.mkdir(parents=True, exist_ok=True)

        def on_epoch(epoch: int, row: dict) -> None:
            model.config.info['epochs_done'] = epoch
            model.config.info['last'] = {k: round(float(v), 6) for k, v in row.items()}
            model.save(opts.out)
            shown = '  '.join(f'{k} {v:.4g}' for k, v in row.items()
                              if k not in ('epoch', 'lr'))
            print(f'epoch {epoch}/{opts.epochs}  {shown}', flush=True)

        fit(model, train_ds, opts.epochs, opts.batch_size, opts.lr, opts.weight_decay,
            opts.seed, val_ds, csv_path(opts.out), progress=not opts.no_progress,
            on_epoch=on_epoch)
    except (OSError, ValueError) as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    print(f'checkpoint: {opts.out}\nlog: {csv_path(opts.out)}\n'
          f'{opts.epochs} epochs in {time.monotonic() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
