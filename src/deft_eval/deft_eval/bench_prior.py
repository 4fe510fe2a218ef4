"""
Benchmark `prior_latency_s`: median seconds from a new RGB-D frame to the 3D grasp prior.

Per segmentation backend (fake, depth, and sam vit_b), the path affordance/predict takes with
the `model` backend, in one process and without ROS transport: segment the frame (the
perception node's crop and 3D points), run the affordance model f(crop, task) and turn it into
the base-frame prior (deft_affordance.lifting.model_grasp: lift the contact with depth, wrist
to the base frame, MANO retargeted to the hand's joints). The frames are rendered by the MuJoCo
twin (pick_cup, a new placement each repeat; the rendering is not timed: on the robot the
camera delivers it). The models are the real architectures with random weights (nothing can be
downloaded here): ResNet-18 + CLIP ViT-B-32 text tower at the model's default 224 px input, SAM
vit_b; their latency is the real one, their outputs are meaningless (a contact too far from the
object is then refused after all the work is done, and still timed).

    python -m deft_eval.bench_prior --out results/bench.json [--repeats 5] [--sam-repeats 2]

Goals of the issue: at most 0.15 s with `depth`, at most 1.0 s with a SAM-family backend.
"""

import argparse
import json
import os
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

GOALS_S = {'depth': 0.15, 'sam_vit_b': 1.0}
TASK = 'pick_cup'


def build_model(image_size: int = 224):
    """Return the affordance model with the real default architecture, randomly initialised."""
    import torch

    from deft_affordance.model import AffordanceModel
    torch.manual_seed(0)
    return AffordanceModel.build(backbone='resnet18', clip_model='ViT-B-32', allow_random=True,
                                 image_size=image_size)


def segmenter_of(backend: str, evaluator):
    """Return the segmenter of a backend name (sam: vit_b with random weights)."""
    from deft_perception.segmentation import make_segmenter
    if backend == 'depth':
        return evaluator.segmenter  # the sim profile's depth settings
    if backend == 'sam_vit_b':
        return make_segmenter('sam', sam_model_type='vit_b', sam_allow_random=True,
                              **evaluator.s.segmentation)
    return make_segmenter(backend)


def frame_to_prior(evaluator, segmenter, rgb: np.ndarray, depth: np.ndarray, prompt: str):
    """Segment a frame, predict and lift the prior; return the ModelGrasp (ValueError if none)."""
    from deft_affordance.lifting import model_grasp
    from deft_perception.geometry import crop_resize, crop_window, mask_box
    from deft_perception.prompts import parse_prompt

    h, w = depth.shape
    cam = evaluator.camera_model
    mask = segmenter.segment(rgb, depth, cam, parse_prompt(prompt, w, h))
    points, _ = cam.backproject(mask, depth)
    window = crop_window(mask_box(mask), evaluator.s.crop_margin, w, h)
    crop = crop_resize(rgb, window, evaluator.s.crop_size)
    pred = evaluator.model.predict(crop, evaluator.spec.text)
    return model_grasp(pred, crop.shape[1], window, points, evaluator.k,
                       evaluator.camera_to_base, evaluator.retargeter,
                       evaluator.hand.joint_names, evaluator.s.max_lift_distance_px)


def measure(evaluator, backend: str, repeats: int) -> Dict[str, object]:
    """Return the median, all times and how many priors were refused, over `repeats` frames."""
    segmenter = segmenter_of(backend, evaluator)
    times: List[float] = []
    refused = 0
    for i in range(repeats + 1):  # one untimed warm-up frame, as the node warms up at start
        evaluator.world.reset(900_000 + i, 'test')
        rgb, depth = evaluator.world.render()
        prompt = evaluator.prompt()
        t0 = time.perf_counter()
        try:
            frame_to_prior(evaluator, segmenter, rgb, depth, prompt)
        except ValueError:  # random weights: the contact may land off the object
            refused += i > 0
        if i > 0:
            times.append(time.perf_counter() - t0)
        print(f'  {backend}: frame {i}/{repeats} {time.perf_counter() - t0:.3f} s'
              + (' (warm-up)' if i == 0 else ''), flush=True)
    return {'median_s': float(np.median(times)), 'times_s': [round(t, 4) for t in times],
            'refused': refused}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure every backend, print a table and merge prior_latency_s into --out."""
    parser = argparse.ArgumentParser(prog='python -m deft_eval.bench_prior',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=5, help='frames per weight-free backend')
    parser.add_argument('--sam-repeats', type=int, default=2,
                        help='frames for sam vit_b (its image encoder is the cost)')
    parser.add_argument('--skip-sam', action='store_true')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--small-size', type=int, default=96,
                        help='also time depth with the model at this input side (the '
                             "recipe's default); 0: no")
    parser.add_argument('--out', type=Path, default=None, help='merge into this JSON file')
    opts = parser.parse_args(argv)
    if opts.repeats < 1 or opts.sam_repeats < 1:
        parser.error('--repeats and --sam-repeats must be >= 1')
    os.environ.setdefault('MUJOCO_GL', 'egl')
    import torch
    if opts.threads:
        torch.set_num_threads(opts.threads)
    from deft_eval.sim_eval import SimEvaluator, load_torch_before_gl
    load_torch_before_gl()
    print(f'building the affordance model (ResNet-18 + CLIP ViT-B-32, random weights) and the '
          f'{TASK} world', flush=True)
    results: Dict[str, Dict[str, object]] = {}
    with SimEvaluator(TASK, model=build_model()) as evaluator:
        backends = ['fake', 'depth'] + ([] if opts.skip_sam else ['sam_vit_b'])
        for backend in backends:
            repeats = opts.sam_repeats if backend.startswith('sam') else opts.repeats
            try:
                results[backend] = measure(evaluator, backend, repeats)
            except (ValueError, ImportError) as exc:
                print(f'{backend}: not measured: {exc}', file=sys.stderr)
        if opts.small_size:
            evaluator.model = build_model(opts.small_size)
            results[f'depth_{opts.small_size}px'] = measure(evaluator, 'depth', opts.repeats)
    print(f'\n{"backend":<10} {"median s":>9} {"goal s":>7}  refused')
    for backend, r in results.items():
        goal = GOALS_S.get(backend.split('_')[0] if backend.startswith('depth') else backend)
        print(f'{backend:<10} {r["median_s"]:>9.3f} {goal if goal else "-":>7}  '
              f'{r["refused"]}/{len(r["times_s"])}')
    if opts.out is not None:
        data = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
        data['prior_latency_s'] = {
            'value': {b: round(r['median_s'], 4) for b, r in results.items()}, 'unit': 's',
            'goal': GOALS_S,
            'detail': ('median seconds from a new 640x480 RGB-D frame of the MuJoCo twin to the '
                       'base-frame grasp prior (segment, crop, affordance model, lift, '
                       'retarget), per segmentation backend; random weights of the real '
                       'architectures (ResNet-18 + CLIP ViT-B-32 at 224 px, SAM vit_b); '
                       'depth_<n>px: the model at the n px input of deft_affordance_recipe; '
                       'after one warm-up frame'),
            'runs': results}
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(data, indent=2) + '\n')
        print(f'merged prior_latency_s into {opts.out}')
    return 0 if results else 1


if __name__ == '__main__':
    raise SystemExit(main())
