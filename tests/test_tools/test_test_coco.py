"""tools/test.py prints the COCO metrics pycocotools gives for its --out."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/nasbnn_det/faster-rcnn_r18_fpn_6e_digits.py')


def _coco_stats(ann_file: str, results: list) -> np.ndarray:
    """Evaluate dumped predictions with pycocotools alone."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(ann_file)
    names = [c['name'] for c in gt.loadCats(gt.getCatIds())]
    cat_ids = [gt.getCatIds(catNms=[str(d)])[0] for d in range(10)]
    assert names == [str(d) for d in range(10)]
    dets = []
    for sample in results:
        pred = sample['pred_instances']
        for box, score, label in zip(pred['bboxes'].tolist(),
                                     pred['scores'].tolist(),
                                     pred['labels'].tolist()):
            x1, y1, x2, y2 = box
            dets.append(
                dict(
                    image_id=int(sample['img_id']),
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    score=score,
                    category_id=cat_ids[label]))
    evaluator = COCOeval(gt, gt.loadRes(dets), 'bbox')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


def test_printed_map_equals_pycocotools_on_out_file(tmp_path):
    """The detector predicts jittered ground truth with some wrong labels
    (``oracle_detector.py``), so the mAP is neither 0 nor 1."""
    pytest.importorskip('mmdet')
    from nasbnn_mm.datasets import prepare_digits
    root = str(tmp_path / 'digits')
    prepare_digits(root, num_train_canvases=2, num_val_canvases=6)
    ckpt = str(tmp_path / 'oracle.pth')
    torch.save(dict(state_dict=dict(dummy=torch.zeros(1)), meta=dict()), ckpt)
    config = tmp_path / 'oracle_digits.py'
    config.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "custom_imports = dict(imports=['nasbnn_mm', "
        "'nasbnn_mm.datasets.checked_coco', 'oracle_detector'])\n"
        "model = dict(_delete_=True, type='OracleDetector', "
        "data_preprocessor=dict(type='DetDataPreprocessor'))\n")
    out = str(tmp_path / 'results.pkl')
    ann_file = osp.join(root, 'det', 'annotations', 'instances_val.json')
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/test.py'),
        str(config), ckpt, '--out', out, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={root}/det/',
        f'test_evaluator.ann_file={ann_file}'
    ],
                          env=dict(
                              os.environ, PYTHONPATH=osp.dirname(__file__)),
                          capture_output=True,
                          text=True,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 6
    stats = _coco_stats(ann_file, results)
    keys = [
        'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m',
        'bbox_mAP_l'
    ]
    for i, key in enumerate(keys):
        # CocoMetric rounds to 3 decimals
        assert printed[f'coco/{key}'] == pytest.approx(
            round(float(stats[i]), 3), abs=1e-9), key
    assert 0.1 < stats[0] < 0.9  # neither all wrong nor all right
