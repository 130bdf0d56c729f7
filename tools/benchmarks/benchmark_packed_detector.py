"""A binary detector, float-simulated vs packed (backbone, neck and heads).

Builds the detector of CONFIG (with ``--checkpoint``, its weights; without,
seeded untrained weights, which do not change the time; ``--trained-like
SEED`` gives those random BN statistics and shifts as after training, so
that the detections can be compared: default-initialised ones put many
values exactly on a sign threshold), runs one image through ``predict`` in
both forms and reports whether the detections are identical (paired one to
one: same label, boxes within ``--box-tol`` px; with the largest difference
of the neck's outputs and the detection scores' range) and their time,
timed round-robin: end to end (``predict``) and the features alone
(``extract_feat``: backbone and neck). The packed form is
:func:`nasbnn_mm.deploy.packed_detector.pack_detector` of the float model,
what ``PackedInferenceHook`` does in ``tools/test.py``.

The image (``--image``, default a seeded random one) is resized to
``--size H W`` without keeping its aspect ratio, then normalised and padded
by the detector's data preprocessor, as in a test pipeline.

Example:
    python tools/benchmarks/benchmark_packed_detector.py \\
        configs/nasbnn_det/faster-rcnn_nasbnn-a_binary-fpn-head_1x_coco.py \\
        --size 800 1344 --out packed_detector_a.json
"""
import argparse
import copy
import json
import sys
from typing import Dict, List, Optional

import mmcv
import torch
from bench_utils import (cpu_info, load_average, spread, summarize,
                         time_round_robin)
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from nasbnn_mm.deploy.packed_detector import match_detections, pack_detector
from nasbnn_mm.testing import trained_like
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.errors import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='binary detector config')
    parser.add_argument('--checkpoint', help='detector weights')
    parser.add_argument(
        '--trained-like',
        type=int,
        metavar='SEED',
        help='random BN statistics and shifts (nasbnn_mm.testing.'
        'trained_like) instead of the initial ones')
    parser.add_argument('--image', help='image file (default: random)')
    parser.add_argument(
        '--size', nargs=2, type=int, metavar=('H', 'W'), help='input size')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--box-tol', type=float, default=1e-3)
    parser.add_argument('--out', help='JSON file for the results')
    args = parser.parse_args(argv)
    if args.size and min(args.size) < 1:
        parser.error(f'--size: {args.size} must be two positive integers')
    if args.threads < 1:
        parser.error(f'--threads: {args.threads} must be >= 1')
    if args.warmup < 0 or args.runs < 2:
        parser.error(f'--warmup {args.warmup} --runs {args.runs}: need '
                     'warmup >= 0 and runs >= 2 (runs give the spread)')
    return args


def build_detector(config: str, checkpoint: Optional[str],
                   trained_like_seed: Optional[int]):
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    torch.manual_seed(0)  # untrained weights: the same in every run
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    if trained_like_seed is not None:
        trained_like(model, trained_like_seed, input_shape=None)
    return model.eval()


def make_batch(model, image: Optional[str], size: Optional[List[int]]):
    """One preprocessed image: (inputs (1, 3, H', W'), data samples)."""
    if image:
        img = mmcv.imread(image)
    else:
        gen = torch.Generator().manual_seed(0)
        h, w = size or (800, 1344)
        img = torch.randint(
            0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy()
    if size:
        img = mmcv.imresize(img, (size[1], size[0]))
    h, w = img.shape[:2]
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.)))
    data = model.data_preprocessor(
        dict(
            inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()],
            data_samples=[sample]), False)
    return data['inputs'], data['data_samples']


def score_range(scores: torch.Tensor) -> Dict[str, float]:
    """How many detection scores, and their smallest and largest."""
    return dict(
        count=len(scores),
        min=scores.min().item() if len(scores) else None,
        max=scores.max().item() if len(scores) else None)


@torch.no_grad()
def run(args: argparse.Namespace) -> Dict[str, object]:
    """Compare and time the two forms; returns the report."""
    torch.set_num_threads(args.threads)
    model = build_detector(args.config, args.checkpoint, args.trained_like)
    inputs, samples = make_batch(model, args.image, args.size)
    # the first forward initialises the LSQ stem steps of untrained weights
    expected = model.predict(inputs, copy.deepcopy(samples))[0].pred_instances
    packed = copy.deepcopy(model)
    counts = pack_detector(packed)
    if not counts:
        raise UserError(f'{args.config}: the model has no binary NASBNN '
                        'backbone or binary neck/head blocks to pack; give a '
                        'binary detector config')
    result = packed.predict(inputs, copy.deepcopy(samples))[0].pred_instances
    feature_diff = max((a - b).abs().max().item() for a, b in zip(
        model.extract_feat(inputs), packed.extract_feat(inputs)))
    report = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        trained_like=args.trained_like,
        image=args.image or 'random',
        input_shape=list(inputs.shape),
        packed_modules=counts,
        comparison=match_detections(expected, result, args.box_tol),
        feature_max_abs_diff=feature_diff,
        scores=dict(
            float=score_range(expected.scores),
            packed=score_range(result.scores)),
        cpu=cpu_info(),
        load_before=load_average())
    arms = {
        'float predict': lambda: model.predict(inputs, copy.deepcopy(samples)),
        'packed predict':
        lambda: packed.predict(inputs, copy.deepcopy(samples)),
        'float extract_feat': lambda: model.extract_feat(inputs),
        'packed extract_feat': lambda: packed.extract_feat(inputs),
    }
    times = time_round_robin(arms, args.warmup, args.runs)
    report['load_after'] = load_average()
    report['ms'] = {name: summarize(t) for name, t in times.items()}
    report['speedup'] = {
        part:
        spread([
            f / p
            for f, p in zip(times[f'float {part}'], times[f'packed {part}'])
        ])
        for part in ('predict', 'extract_feat')
    }
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0, or 2 after a user error (printed as one line)."""
    args = parse_args(argv)

    def work() -> int:
        run(args)
        return 0

    return run_tool('benchmark_packed_detector.py', work)


if __name__ == '__main__':
    sys.exit(main())
