"""
Benchmark the segmentation backends: median seconds from a new RGB-D frame to the object mask.

A synthetic 640 x 480 tabletop (a plane 0.9 m away, one box 5 cm tall, a noise texture), the
salient-object prompt, a new frame (new bytes) every repeat so the sam backend recomputes its
image embedding each time. `sam` is vit_b with random weights: its latency is the real one,
its masks are meaningless. Results are merged into results/bench.json as segment_latency_s
(the whole image -> 3D grasp prior path is deft_eval.bench_prior: prior_latency_s).
"""

import argparse
import json
from pathlib import Path
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from deft_perception.geometry import CameraModel
from deft_perception.prompts import Prompt
from deft_perception.segmentation import BACKENDS, SegmentationError, make_segmenter

W, H = 640, 480
CAMERA = CameraModel(525.0, 525.0, 319.5, 239.5, W, H)


def scene(seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return (rgb uint8, depth m) of a box on a table, textured by `seed`."""
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 0.9, np.float32)
    depth[180:300, 260:380] = 0.85
    rgb[180:300, 260:380] = (200, 40, 40)
    return rgb, depth


def _segmenter(backend: str):
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; available: {", ".join(BACKENDS)}')
    if backend == 'sam':
        return make_segmenter('sam', sam_model_type='vit_b', sam_allow_random=True)
    return make_segmenter(backend)


def measure_latency(backend: str, repeats: int = 3, segmenter=None) -> float:
    """Return the median seconds image -> mask of `backend` over `repeats` new frames."""
    seg = segmenter if segmenter is not None else _segmenter(backend)
    times = []
    for i in range(max(1, repeats)):
        rgb, depth = scene(i)
        t0 = time.perf_counter()
        try:
            seg.segment(rgb, depth, CAMERA, Prompt('salient'))
        except SegmentationError:  # an answer too (random sam weights may find nothing)
            pass
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_sam(repeats: int = 2) -> Dict[str, float]:
    """Return construction, embedding and prompt latencies of sam vit_b (random weights), s."""
    t0 = time.perf_counter()
    seg = _segmenter('sam')
    build = time.perf_counter() - t0
    embed, point, salient = [], [], []
    for i in range(max(1, repeats)):
        rgb, depth = scene(i)
        seg.segment(rgb, depth, CAMERA, Prompt('point', point=(320.0, 240.0)))
        embed.append(seg.last_timing['set_image_s'])
        point.append(seg.last_timing['predict_s'])
        t0 = time.perf_counter()
        try:  # the embedding is cached: this is the proposals' cost
            seg.segment(rgb, depth, CAMERA, Prompt('salient'))
        except SegmentationError:  # random weights may propose only specks or background
            pass
        salient.append(time.perf_counter() - t0)
    return {'build_s': build, 'set_image_s': float(np.median(embed)),
            'predict_point_s': float(np.median(point)),
            'predict_salient_s': float(np.median(salient)),
            'image_to_mask_s': float(np.median(embed) + np.median(point))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the measurement as JSON and optionally merge it into the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=5, help='frames per weight-free backend')
    parser.add_argument('--sam-repeats', type=int, default=2,
                        help='frames for sam (about 40 s each for vit_b on two CPU cores)')
    parser.add_argument('--skip-sam', action='store_true')
    parser.add_argument('--out', type=Path, default=None,
                        help='merge segment_latency_s into this JSON file (make bench)')
    opts = parser.parse_args(argv)
    medians = {b: measure_latency(b, opts.repeats) for b in ('fake', 'depth')}
    sam = None if opts.skip_sam else measure_sam(opts.sam_repeats)
    if sam is not None:
        medians['sam_vit_b'] = sam['image_to_mask_s']
    print(json.dumps({'median_s': medians, 'sam_vit_b': sam}, indent=2))
    if opts.out is not None:
        results = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
        results['segment_latency_s'] = {
            'value': {k: round(v, 4) for k, v in medians.items()}, 'unit': 's',
            'detail': (f'median seconds from a new {W}x{H} RGB-D frame to the object mask per '
                       f'segmentation backend ({opts.repeats} frames; sam: vit_b, random '
                       f'weights, point prompt, {opts.sam_repeats} frames)'),
            'sam_vit_b': None if sam is None else {k: round(v, 4) for k, v in sam.items()}}
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
