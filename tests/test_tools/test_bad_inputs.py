"""Every tool, fed a bad input, fails in one clear line and writes nothing.

Each case runs a tool as a user does (a subprocess) with one bad input: a
damaged checkpoint (truncated, a text file, a pickle that needs
``weights_only=False``), a checkpoint of another model, an invalid arch
spec, search space, config or option. It must exit non-zero with exactly one
line on stderr, naming the file or field, no traceback, and no output file
written or changed. Python warnings are switched off (``PYTHONWARNINGS``):
they are not the tool's message.

The tools run from ``NASBNN_BAD_INPUT_REPO`` when set (another checkout,
e.g. an older commit, to count its clear lines with ``--runxfail``), else
from this repository. Inputs are made once per session; cases that need
data stop before training or testing a single batch.
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from nasbnn_mm.datasets import prepare_digits
from nasbnn_mm.nas import SearchSpace

HERE = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REPO = os.environ.get('NASBNN_BAD_INPUT_REPO', HERE)
SUPERNET_CFG = 'configs/nasbnn/nasbnn_supernet_digits.py'
SUBNET_CFG = 'configs/nasbnn/nasbnn-subnet_digits.py'
SEARCH_CFG = 'configs/nasbnn/nasbnn_search_digits.py'
R18_DET_CFG = 'configs/nasbnn_det/faster-rcnn_r18_fpn_6e_digits.py'
NASBNN_DET_CFG = ('configs/nasbnn_det/'
                  'faster-rcnn_nasbnn-digits-l_fpn_6e_digits.py')


@dataclass
class Inputs:
    """Paths of the shared inputs (made once per session)."""
    root: str
    files: Dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> str:
        files = self.__dict__.get('files', {})
        if name in files:
            return files[name]
        raise AttributeError(name)


def _write(path: str, text: str) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def _build(config: str) -> torch.nn.Module:
    cfg = Config.fromfile(osp.join(REPO, config))
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def make_inputs(root: str) -> Inputs:
    """Write every shared input under ``root``."""
    os.makedirs(root, exist_ok=True)
    made = Inputs(root)
    f = made.files
    torch.manual_seed(0)
    f['supernet'] = osp.join(root, 'supernet.pth')
    torch.save(
        dict(state_dict=_build(SUPERNET_CFG).state_dict(), meta=dict()),
        f['supernet'])
    # another model: the static largest subnet, as an ImageClassifier
    f['subnet'] = osp.join(root, 'subnet.pth')
    torch.save(
        dict(state_dict=_build(SUBNET_CFG).state_dict(), meta=dict()),
        f['subnet'])
    with open(f['supernet'], 'rb') as src:
        data = src.read()
    f['truncated'] = osp.join(root, 'truncated.pth')
    with open(f['truncated'], 'wb') as dst:
        dst.write(data[:len(data) // 2])
    f['text'] = _write(osp.join(root, 'notes.pth'), 'not a checkpoint\n')
    f['unsafe'] = osp.join(root, 'unsafe.pth')
    torch.save(
        dict(state_dict={}, meta=argparse.Namespace(epoch=1)), f['unsafe'])
    f['official'] = osp.join(root, 'official.pth')
    torch.save({'features.0.0.conv.weight': torch.zeros(16, 3, 3, 3)},
               f['official'])
    f['bad_arch'] = _write(
        osp.join(root, 'bad_arch.json'),
        json.dumps(
            dict(
                stem='c16_k3_g1',
                stages=[['c32_k3'], ['c64_k3_g1'], ['c128_k3_g2']])))
    space = SearchSpace.from_config('nasbnn_digits').to_dict()
    # stage 1 takes widths {16, 24, 32}: 5 divides none of them
    space['stages'][1]['groups'] = [5]
    f['space_groups'] = _write(
        osp.join(root, 'space_groups.py'), f'search_space = {space!r}\n')
    space['stages'][1]['group'] = [1]
    f['space_key'] = _write(
        osp.join(root, 'space_key.py'), f'search_space = {space!r}\n')
    f['space_syntax'] = _write(
        osp.join(root, 'space_syntax.py'), 'search_space = dict(\n')
    f['config_syntax'] = _write(
        osp.join(root, 'config_syntax.py'), 'model = dict(\n')
    f['config_type'] = _write(
        osp.join(root, 'config_type.py'),
        f'_base_ = [{osp.join(REPO, SUPERNET_CFG)!r}]\n'
        "model = dict(backbone=dict(type='nasbnn_mm.SuperBNNX'))\n")
    f['digits'] = osp.join(root, 'digits')
    prepare_digits(f['digits'], num_train_canvases=2, num_val_canvases=2)
    with open(
            osp.join(f['digits'], 'det', 'annotations',
                     'instances_val.json')) as src:
        coco = json.load(src)
    coco['annotations'] = []
    f['coco_empty'] = osp.join(root, 'instances_empty.json')
    with open(f['coco_empty'], 'w') as dst:
        json.dump(coco, dst)
    f['a_file'] = _write(osp.join(root, 'a_file'), 'x\n')
    return made


def _cls_data(made: Inputs) -> List[str]:
    cls = osp.join(made.digits, 'cls')
    return [
        f'{loader}.dataset.data_root={cls}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + ['test_dataloader.dataset.indices=4']


def _det_data(made: Inputs, ann: Optional[str] = None) -> List[str]:
    det = osp.join(made.digits, 'det') + '/'
    ann = ann or osp.join(det, 'annotations', 'instances_val.json')
    return [
        f'train_dataloader.dataset.data_root={det}',
        f'test_dataloader.dataset.data_root={det}',
        f'val_dataloader.dataset.data_root={det}',
        f'test_dataloader.dataset.ann_file={ann}',
        f'test_evaluator.ann_file={ann}', f'val_evaluator.ann_file={ann}'
    ]


def _nasbnn_det(made: Inputs) -> List[str]:
    # the config names its arch file relative to the repository
    arch = osp.join(REPO, 'configs/nasbnn_det/archs/nasbnn-digits-l.json')
    return [f'model.backbone.arch={arch}', *_det_data(made)]


@dataclass
class Case:
    """One bad input to one tool.

    Args:
        tool (str): Path under ``tools/``.
        args (callable): ``(inputs, out_dir) -> argv``.
        names (Sequence[str]): Texts the error line must contain (the file
            or field); ``{name}`` is formatted with the inputs' paths.
        outputs (Sequence[str]): Globs under ``out_dir`` that must not
            appear (or change).
        env (dict): Extra environment variables.
        owner (str, optional): Why and whose it still fails (xfail).
    """
    tool: str
    args: Callable[[Inputs, str], List[str]]
    names: Sequence[str]
    outputs: Sequence[str] = ('**/*', )
    env: Dict[str, str] = field(default_factory=dict)
    owner: Optional[str] = None


def _damaged(tool: str, args: Callable[[Inputs, str, str], List[str]],
             outputs: Sequence[str]) -> Dict[str, Case]:
    """The three damaged-checkpoint cases of one tool."""
    return {
        f'{osp.basename(tool)[:-3]}-{kind}':
        Case(
            tool,
            lambda m, o, kind=kind: args(m, o, getattr(m, kind)),
            [f'{{{kind}}}'],
            outputs)
        for kind in ('truncated', 'text', 'unsafe')
    }


def _cfg(path: str) -> str:
    return osp.join(REPO, path)


# What each case went wrong with (None: one clear line).
Outcomes = Dict[str, Optional[str]]
TRAIN_OUT = ('work/**/*.pth', 'work/last_checkpoint')
CASES: Dict[str, Case] = {}

# tools/train.py
CASES.update({
    'train-missing-config':
    Case('train.py', lambda m, o: [osp.join(o, 'none.py'), '--work-dir', o],
         ['none.py']),
    'train-config-syntax':
    Case('train.py', lambda m, o: [m.config_syntax, '--work-dir', o],
         ['{config_syntax}']),
    'train-unknown-type':
    Case('train.py', lambda m, o: [m.config_type, '--work-dir', f'{o}/work'],
         ['SuperBNNX'], TRAIN_OUT),
    'train-bad-arch':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUBNET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            f'model.backbone.arch={m.bad_arch}'
        ], ['stages[0][0]'], TRAIN_OUT),
    'train-space-groups':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUPERNET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            f'model.backbone.search_space={m.space_groups}'
        ], ['stages[1].groups'], TRAIN_OUT),
    'train-space-syntax':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUPERNET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            f'model.backbone.search_space={m.space_syntax}'
        ], ['{space_syntax}'], TRAIN_OUT),
    'train-num-random':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUPERNET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            'model.num_random=-1'
        ], ['num_random'], TRAIN_OUT),
    'train-out-indices':
    Case(
        'train.py', lambda m, o: [
            _cfg(NASBNN_DET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            'model.backbone.out_indices=[1,7]', *_nasbnn_det(m)
        ], ['out_indices'], TRAIN_OUT),
    'train-neck-in-channels':
    Case(
        'train.py', lambda m, o: [
            _cfg(NASBNN_DET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            'model.neck.in_channels=[8,16]', *_nasbnn_det(m)
        ], ['in_channels'], TRAIN_OUT),
    'train-resume-truncated':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUPERNET_CFG), '--work-dir', f'{o}/work', '--resume', m.
            truncated
        ], ['{truncated}'], TRAIN_OUT),
    'train-load-from-text':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUBNET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            f'load_from={m.text}'
        ], ['{text}'], TRAIN_OUT),
    'train-load-from-wrong-model':
    Case(
        'train.py', lambda m, o: [
            _cfg(SUBNET_CFG), '--work-dir', f'{o}/work', '--cfg-options',
            f'load_from={m.supernet}', *_cls_data(m)
        ], ['{supernet}', 'unexpected keys'], TRAIN_OUT),
})

# tools/test.py
CASES.update(
    _damaged(
        'test.py', lambda m, o, ckpt: [
            _cfg(SUBNET_CFG), ckpt, '--out', f'{o}/r.pkl', '--work-dir',
            f'{o}/work'
        ], ('r.pkl', )))
CASES.update({
    'test-missing-checkpoint':
    Case(
        'test.py', lambda m, o:
        [_cfg(SUBNET_CFG),
         osp.join(o, 'none.pth'), '--out', f'{o}/r.pkl'], ['none.pth'],
        ('r.pkl', )),
    'test-wrong-model':
    Case(
        'test.py', lambda m, o: [
            _cfg(SUBNET_CFG), m.supernet, '--out', f'{o}/r.pkl', '--work-dir',
            f'{o}/work', '--cfg-options', *_cls_data(m)
        ], ['{supernet}', 'unexpected keys'], ('r.pkl', )),
    'test-wrong-model-detector':
    Case(
        'test.py', lambda m, o: [
            _cfg(R18_DET_CFG), m.supernet, '--out', f'{o}/r.pkl', '--work-dir',
            f'{o}/work', '--cfg-options', *_det_data(m)
        ], ['{supernet}', 'missing keys'], ('r.pkl', )),
    'test-bad-arch':
    Case(
        'test.py', lambda m, o: [
            _cfg(SUBNET_CFG), m.subnet, '--out', f'{o}/r.pkl', '--work-dir',
            f'{o}/work', '--cfg-options', f'model.backbone.arch={m.bad_arch}'
        ], ['stages[0][0]'], ('r.pkl', )),
    'test-out-folder':
    Case(
        'test.py', lambda m, o:
        [_cfg(SUBNET_CFG), m.subnet, '--out',
         osp.join(o, 'none', 'r.pkl')], ['--out', 'none']),
    'test-out-not-pkl':
    Case('test.py',
         lambda m, o: [_cfg(SUBNET_CFG), m.subnet, '--out', f'{o}/r.txt'],
         ['--out', 'r.txt']),
    'test-missing-config':
    Case('test.py', lambda m, o: [osp.join(o, 'none.py'), m.subnet],
         ['none.py']),
    'test-coco-no-annotations':
    Case(
        'test.py', lambda m, o: [
            _cfg(R18_DET_CFG), m.subnet, '--out', f'{o}/r.pkl', '--work-dir',
            f'{o}/work', '--allow-partial-load', '--cfg-options', *_det_data(
                m, m.coco_empty)
        ], ['{coco_empty}', 'no annotation'], ('r.pkl', )),
})

# tools/search.py
SEARCH_OUT = ('work/pareto.json', 'work/search_state.json')


def _search_data(made: Inputs) -> List[str]:
    cls = osp.join(made.digits, 'cls')
    return [
        f'train_dataloader.dataset.data_root={cls}',
        f'train_cfg.problem.eval_dataloader.dataset.data_root={cls}'
    ]


CASES.update(
    _damaged(
        'search.py', lambda m, o, ckpt: [
            _cfg(SEARCH_CFG), ckpt, '--work-dir', f'{o}/work', '--cfg-options',
            *_search_data(m)
        ], SEARCH_OUT))
CASES.update({
    'search-wrong-model':
    Case(
        'search.py', lambda m, o: [
            _cfg(SEARCH_CFG), m.subnet, '--work-dir', f'{o}/work',
            '--cfg-options', *_search_data(m)
        ], ['{subnet}'], SEARCH_OUT),
    'search-missing-config':
    Case('search.py', lambda m, o: [osp.join(o, 'none.py'), m.supernet],
         ['none.py']),
})

# tools/export_subnet.py
EXPORT_OUT = ('export/*', )
CASES.update(
    _damaged(
        'export_subnet.py', lambda m, o, ckpt: [
            ckpt, '--config',
            _cfg(SUPERNET_CFG), '--arch', 'largest', '--out', f'{o}/export'
        ], EXPORT_OUT))
CASES.update({
    'export_subnet-wrong-model':
    Case(
        'export_subnet.py', lambda m, o: [
            m.subnet, '--config',
            _cfg(SUPERNET_CFG), '--arch', 'largest', '--out', f'{o}/export'
        ], ['{subnet}'], EXPORT_OUT),
    'export_subnet-bad-arch':
    Case(
        'export_subnet.py', lambda m, o: [
            m.supernet, '--config',
            _cfg(SUPERNET_CFG), '--arch', m.bad_arch, '--out', f'{o}/export',
            '--calibrate-batches', '0'
        ], ['stages[0][0]'], EXPORT_OUT),
})

# tools/deploy/pack_subnet.py
PACK = 'deploy/pack_subnet.py'
CASES.update(
    _damaged(PACK, lambda m, o, ckpt: [ckpt, '--out', f'{o}/packed.pth'],
             ('packed.pth', )))
CASES.update({
    'pack_subnet-wrong-model':
    Case(PACK, lambda m, o: [m.supernet, '--out', f'{o}/packed.pth'],
         ['{supernet}'], ('packed.pth', )),
    'pack_subnet-kernel-env':
    Case(
        PACK,
        lambda m, o: ['--preset', 'A', '--out', f'{o}/packed.pth'],
        ['NASBNN_BINARY_KERNEL'], ('packed.pth', ),
        env=dict(NASBNN_BINARY_KERNEL='foo')),
})

# tools/model_converters/nasbnn_official_to_mm.py
CONVERT = 'model_converters/nasbnn_official_to_mm.py'
CASES.update(
    _damaged(CONVERT, lambda m, o, ckpt: [ckpt, f'{o}/converted.pth'],
             ('converted.pth', )))
CASES.update({
    'nasbnn_official_to_mm-wrong-model':
    Case(CONVERT, lambda m, o: [m.supernet, f'{o}/converted.pth'],
         ['{supernet}'], ('converted.pth', )),
    'nasbnn_official_to_mm-out-folder':
    Case(CONVERT, lambda m, o: [m.official, f'{o}/none/converted.pth'],
         ['none'], ('none/converted.pth', )),
})

# tools/analysis_tools/get_ops.py
GET_OPS = 'analysis_tools/get_ops.py'
CASES.update({
    'get_ops-bad-arch':
    Case(GET_OPS, lambda m, o: [m.bad_arch, '--space', 'nasbnn_digits'],
         ['{bad_arch}', 'stages[0][0]']),
    'get_ops-missing-arch':
    Case(GET_OPS, lambda m, o: [osp.join(o, 'none.json')], ['none.json']),
    'get_ops-space-groups':
    Case(GET_OPS, lambda m, o: ['A', '--space', m.space_groups],
         ['stages[1].groups']),
    'get_ops-unknown-type':
    Case(GET_OPS, lambda m, o: [m.config_type, '--input-size', '32'],
         ['SuperBNNX']),
    'get_ops-neck-in-channels':
    Case(
        GET_OPS, lambda m, o: [
            _cfg('configs/nasbnn_det/faster-rcnn_nasbnn-a_fpn_1x_coco.py'
                 ), '--input-size', '64', '--cfg-options',
            'model.neck.in_channels=[1,2,3]'
        ], ['neck.in_channels [1, 2, 3]']),
})

# tools/analysis_tools/space_size.py
SPACE_SIZE = 'analysis_tools/space_size.py'
CASES.update({
    'space_size-missing':
    Case(SPACE_SIZE, lambda m, o: [osp.join(o, 'none.py')], ['none.py']),
    'space_size-groups':
    Case(SPACE_SIZE, lambda m, o: [m.space_groups], ['stages[1].groups']),
    'space_size-syntax':
    Case(SPACE_SIZE, lambda m, o: [m.space_syntax], ['{space_syntax}']),
    'space_size-unknown-key':
    Case(SPACE_SIZE, lambda m, o: [m.space_key], ['stages[1]', 'group']),
})

# tools/dataset_converters/prepare_digits.py
PREPARE = 'dataset_converters/prepare_digits.py'
CASES.update({
    'prepare_digits-out-is-file':
    Case(PREPARE, lambda m, o: ['--out', m.a_file], ['{a_file}']),
    'prepare_digits-out-under-file':
    Case(PREPARE, lambda m, o: ['--out', osp.join(m.a_file, 'digits')],
         ['{a_file}']),
    'prepare_digits-search-val':
    Case(PREPARE,
         lambda m, o: ['--out', f'{o}/d', '--search-val-per-class', '0'],
         ['search_val_per_class']),
    'prepare_digits-image-size':
    Case(PREPARE, lambda m, o: ['--out', f'{o}/d', '--image-size', '0'],
         ['image_size']),
})


def _snapshot(root: str, patterns: Sequence[str]) -> Dict[str, str]:
    """Digest of every file under ``root`` matching ``patterns``."""
    found = {}
    for pattern in patterns:
        for path in glob.glob(osp.join(root, pattern), recursive=True):
            if osp.isfile(path):
                with open(path, 'rb') as f:
                    found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


def run_case(case: Case, made: Inputs, out_dir: str) -> Tuple[Any, bool]:
    """Run the case's tool; returns the process and whether an output (or
    a shared input) was written or changed."""
    os.makedirs(out_dir, exist_ok=True)
    before = _snapshot(out_dir, case.outputs)
    inputs_before = _snapshot(made.root, ['*'])
    env = dict(
        os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1', **case.env)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', case.tool), *case.args(made, out_dir)
    ],
                          env=env,
                          cwd=out_dir,
                          capture_output=True,
                          text=True,
                          timeout=300)
    changed = (
        _snapshot(out_dir, case.outputs) != before
        or _snapshot(made.root, ['*']) != inputs_before)
    return proc, changed


def problem(case: Case, made: Inputs, proc: Any,
            changed: bool) -> Optional[str]:
    """Why the outcome is not one clear line, or None."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 0:
        return 'exit status 0'
    if len(lines) != 1 or 'Traceback' in proc.stderr:
        return f'{len(lines)} lines on stderr: ' + ' | '.join(lines[-3:])
    if 'error' not in lines[0]:
        return f'not an error line: {lines[0]}'
    for text in case.names:
        if text.format(**made.files) not in lines[0]:
            return f'{text.format(**made.files)!r} not named: {lines[0]}'
    if changed:
        return 'an output or input file was written or changed'
    return None


def run_all(made: Inputs, root: str, names: Sequence[str] = ()) -> Outcomes:
    """Run the named cases (default: all), a few at a time; returns each
    case's problem."""

    def one(name: str) -> Optional[str]:
        case = CASES[name]
        proc, changed = run_case(case, made, osp.join(root, name))
        return problem(case, made, proc, changed)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
        names = list(names) or list(CASES)
        return dict(zip(names, ex.map(one, names)))


@pytest.fixture(scope='session')
def outcomes(tmp_path_factory) -> Outcomes:
    root = str(tmp_path_factory.mktemp('bad_inputs'))
    made = make_inputs(osp.join(root, 'inputs'))
    return run_all(made, osp.join(root, 'runs'))


def _params():
    for name, case in CASES.items():
        marks = [] if case.owner is None else [
            pytest.mark.xfail(strict=True, reason=case.owner)
        ]
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize('name', list(_params()))
def test_bad_input_fails_in_one_line(name, outcomes):
    assert outcomes[name] is None, outcomes[name]


def test_every_tool_is_covered():
    tools = {case.tool for case in CASES.values()}
    assert tools == {
        'train.py', 'test.py', 'search.py', 'export_subnet.py', PACK, CONVERT,
        GET_OPS, SPACE_SIZE, PREPARE
    }
    assert len(CASES) >= 50


if __name__ == '__main__':
    # python tests/test_tools/test_bad_inputs.py [WORK_DIR [CASE...]]: one
    # line per case and the count of clear ones (NASBNN_BAD_INPUT_REPO: the
    # tools to run)
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    results = run_all(
        make_inputs(osp.join(work, 'inputs')), osp.join(work, 'runs'),
        sys.argv[2:])
    for name, why in results.items():
        print(f'{name:40s} {"clear" if why is None else why}')
    clear = sum(why is None for why in results.values())
    print(f'{clear} of {len(results)} cases end in one clear line')
