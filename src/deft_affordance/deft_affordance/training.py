"""
Losses, metrics, the training loop and evaluation of the affordance model.

Loss of one sample (weights from the config: contact_weight, rotation_weight, hand_pose_weight):

- contact: distance between the predicted set of K points and the labelled set, in normalised
  crop units (1 = the crop's side). With exactly K labels, the Hungarian minimum-cost assignment
  (scipy's linear_sum_assignment on the Euclidean distances, found without gradient) and the mean
  distance of the matched pairs; with another count, the symmetric Chamfer distance (mean distance
  of each prediction to its nearest label plus mean distance of each label to its nearest
  prediction, halved). Plain (not squared) distances keep the gradient useful down to a pixel.
- rotation: chordal distance ||R_pred - R_label||_F^2 / 8 = (1 - cos angle) / 2, smooth
  everywhere (the geodesic angle's gradient is not at 0 and pi), zero only at the label.
- hand_pose: mean squared error of the 45 MANO axis-angle values (radians).

Metrics (`evaluate`, means over samples):

- contact_px: the contact loss's matched distance, in pixels of the crop as given;
- contact_mean_px: distance between the mean predicted and the mean labelled contact point (what
  the robot lifts to 3D), pixels;
- wrist_deg: geodesic angle between predicted and labelled wrist rotation, degrees;
- hand_pose_deg: mean over the 15 MANO joints of the angle between predicted and labelled joint
  rotations, degrees; hand_pose_mae: mean absolute error of the 45 values, radians.
"""

import csv
import math
from pathlib import Path
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
import torch

from deft_affordance.dataset import AffordanceDataset, collate
from deft_affordance.model import AffordanceModel
from deft_affordance.torch_geometry import axis_angle_to_matrix, geodesic_angle

METRICS = ('contact_px', 'contact_mean_px', 'wrist_deg', 'hand_pose_deg', 'hand_pose_mae')
LOSSES = ('loss', 'contact', 'rotation', 'hand_pose')


def set_distance(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Return the set distance (see the module doc) between (K, 2) and (Ki, 2) points."""
    d = torch.sqrt(((pred[:, None, :] - label[None, :, :]) ** 2).sum(-1) + 1e-12)  # K, Ki
    if d.shape[0] == d.shape[1]:
        rows, cols = linear_sum_assignment(d.detach().cpu().numpy())
        return d[torch.as_tensor(rows), torch.as_tensor(cols)].mean()
    return 0.5 * (d.min(dim=1).values.mean() + d.min(dim=0).values.mean())


def contact_loss(points: torch.Tensor, labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return the (B,) contact loss of predicted (B, K, 2) against labelled normalised points."""
    return torch.stack([set_distance(p, t.to(points)) for p, t in zip(points, labels)])


def losses(model: AffordanceModel, out: Dict[str, torch.Tensor],
           batch: Dict) -> Dict[str, torch.Tensor]:
    """Return the mean weighted `loss` of a batch and its unweighted parts (see module doc)."""
    cfg = model.config
    dev = out['points'].device
    contact = contact_loss(out['points'], batch['contacts']).mean()
    rotation = ((out['rotation'] - batch['rotation'].to(dev)) ** 2).sum((-1, -2)).mean() / 8
    hand_pose = ((out['hand_pose'] - batch['hand_pose'].to(dev)) ** 2).mean()
    loss = (cfg.contact_weight * contact + cfg.rotation_weight * rotation
            + cfg.hand_pose_weight * hand_pose)
    return {'loss': loss, 'contact': contact, 'rotation': rotation, 'hand_pose': hand_pose}


def sample_metrics(out: Dict[str, torch.Tensor], batch: Dict) -> Dict[str, np.ndarray]:
    """Return per-sample metrics (see module doc) of a batch's outputs."""
    with torch.no_grad():
        size = batch['size'].to(out['points'])                            # B, 2 (w, h)
        px = out['points'] * size[:, None]
        contact, contact_mean = [], []
        for p, t, s in zip(px, batch['contacts'], size):
            t = t.to(p) * s
            contact.append(float(set_distance(p, t)))
            contact_mean.append(float((p.mean(0) - t.mean(0)).norm()))
        wrist = geodesic_angle(out['rotation'], batch['rotation'].to(px))
        pred = axis_angle_to_matrix(out['hand_pose'].double().view(-1, 15, 3))
        true = axis_angle_to_matrix(batch['hand_pose'].to(pred).view(-1, 15, 3))
        joints = geodesic_angle(pred, true).mean(-1)
        mae = (out['hand_pose'] - batch['hand_pose'].to(px)).abs().mean(-1)
    return {'contact_px': np.array(contact), 'contact_mean_px': np.array(contact_mean),
            'wrist_deg': np.degrees(wrist.double().cpu().numpy()),
            'hand_pose_deg': np.degrees(joints.cpu().numpy()),
            'hand_pose_mae': mae.double().cpu().numpy()}


def _loader(dataset: AffordanceDataset, batch_size: int, shuffle: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       collate_fn=collate, generator=g)


def evaluate(model: AffordanceModel, dataset: AffordanceDataset,
             batch_size: int = 16) -> Dict[str, float]:
    """Return the mean metrics of the model on a dataset (evaluation mode)."""
    per = evaluate_samples(model, dataset, batch_size)
    return {k: float(np.mean(per[k])) for k in METRICS}


def evaluate_samples(model: AffordanceModel, dataset: AffordanceDataset,
                     batch_size: int = 16) -> Dict[str, np.ndarray]:
    """Return per-sample metrics and predicted contact pixels ('points') over a dataset."""
    if len(dataset) == 0:
        raise ValueError('no samples to evaluate')
    model.net.eval()
    parts: Dict[str, List] = {k: [] for k in METRICS + ('points',)}
    with torch.no_grad():
        for batch in _loader(dataset, batch_size, False, 0):
            out = model.net(batch['image'].to(model.device), model.text(batch['task']))
            for k, v in sample_metrics(out, batch).items():
                parts[k].append(v)
            size = batch['size'].to(out['points'])[:, None]
            parts['points'].append((out['points'] * size - 0.5).double().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


EpochFn = Callable[[int, Dict[str, float]], None]


def fit(model: AffordanceModel, train: AffordanceDataset, epochs: int, batch_size: int = 16,
        lr: float = 1e-4, weight_decay: float = 1e-4, seed: int = 0,
        val: Optional[AffordanceDataset] = None, csv_path: Optional[Path] = None,
        progress: bool = False, on_epoch: Optional[EpochFn] = None) -> List[Dict[str, float]]:
    """
    Train the network (the CLIP text tower stays frozen) with AdamW; return one row per epoch.

    Each row has the epoch, mean training losses (`LOSSES`), the metrics (`METRICS`, prefixed
    `eval_`) on `val` when given, the learning rate and the seconds taken. `csv_path` gets the
    rows as they come (one line, flushed, per epoch). `progress` shows a
    tqdm bar per epoch on stderr. `on_epoch(epoch, row)` runs after each epoch (e.g. to save).
    With a frozen trunk (`freeze_backbone`) and no augmentation, the trunk's features of each
    crop are computed once and reused: only the heads run afterwards.
    """
    from tqdm import tqdm

    if epochs < 1 or batch_size < 1 or not (lr > 0 and math.isfinite(lr)):
        raise ValueError('epochs and batch_size must be >= 1 and lr a finite number > 0')
    if len(train) == 0:
        raise ValueError('no training samples')
    params = [p for p in model.net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr * 0.05)
    loader = _loader(train, batch_size, True, seed)
    model.text(sorted({s.task for s in train.samples}))  # embed every task once (cached)
    columns = (['epoch'] + [f'train_{k}' for k in LOSSES]
               + ([f'eval_{k}' for k in METRICS] if val is not None else []) + ['lr', 'seconds'])
    writer = None
    if csv_path is not None:
        csv_path = Path(csv_path)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(csv_path, 'w', newline='', encoding='utf-8')
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        fh.flush()
    history = []
    cache = {} if model.net.freeze_backbone and not train.augment else None
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.monotonic()
            model.net.train()
            sums = dict.fromkeys(LOSSES, 0.0)
            n = 0
            bar = tqdm(loader, desc=f'epoch {epoch}/{epochs}', disable=not progress,
                       file=sys.stderr, leave=False, unit='batch', dynamic_ncols=True)
            for batch in bar:
                text = model.text(batch['task'])
                if cache is None:
                    out = model.net(batch['image'].to(model.device), text)
                else:  # frozen trunk, fixed images: its features never change, compute once
                    for i, x in zip(batch['index'], batch['image']):
                        if i not in cache:
                            with torch.no_grad():
                                cache[i] = model.net.features(x[None].to(model.device))[0]
                    out = model.net.heads(torch.stack([cache[i] for i in batch['index']]), text)
                parts = losses(model, out, batch)
                if not torch.isfinite(parts['loss']):
                    raise ValueError(f'training diverged at epoch {epoch} (loss '
                                     f'{float(parts["loss"].detach())}); lower --lr')
                opt.zero_grad(set_to_none=True)
                parts['loss'].backward()
                opt.step()
                b = len(batch['task'])
                n += b
                for k in LOSSES:
                    sums[k] += float(parts[k].detach()) * b
                bar.set_postfix(loss=f'{float(parts["loss"].detach()):.4f}')
            bar.close()
            row = {'epoch': epoch, **{f'train_{k}': sums[k] / n for k in LOSSES},
                   'lr': opt.param_groups[0]['lr']}
            sched.step()
            if val is not None:
                row.update({f'eval_{k}': v for k, v in evaluate(model, val, batch_size).items()})
            row['seconds'] = time.monotonic() - t0
            history.append(row)
            if writer is not None:
                writer.writerow(row)
                fh.flush()
            if on_epoch is not None:
                on_epoch(epoch, row)
    finally:
        if writer is not None:
            fh.close()
        model.net.eval()
    return history
