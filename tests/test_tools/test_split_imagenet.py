import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'split_imagenet.py')


def fake_imagenet(root, sizes):
    for wnid, size in sizes.items():
        folder = root / 'train' / wnid
        folder.mkdir(parents=True)
        for i in range(size):
            (folder / f'{wnid}_{i}.JPEG').write_bytes(b'')
    (root / 'meta').mkdir()
    return root


def run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True,
                          text=True)


def read(path):
    return [line.split() for line in path.read_text().splitlines()]


def test_split_is_a_deterministic_partition(tmp_path):
    sizes = {'n02': 7, 'n01': 5, 'n03': 9}
    root = fake_imagenet(tmp_path / 'in', sizes)
    assert run(root, '--per-class', 2).returncode == 0
    train = read(root / 'meta' / 'train_search.txt')
    search = read(root / 'meta' / 'search_val.txt')
    assert len(train) == sum(sizes.values()) - 2 * len(sizes)
    # Per class: 2 held out, labels in sorted wnid order.
    for label, wnid in enumerate(sorted(sizes)):
        held = [p for p, lab in search if p.startswith(wnid + '/')]
        assert len(held) == 2
        assert {lab
                for p, lab in search + train
                if p.startswith(wnid)} == {str(label)}
    every = sorted(p for p, _ in train + search)
    assert every == sorted(f'{w}/{w}_{i}.JPEG' for w, n in sizes.items()
                           for i in range(n))
    first = (root / 'meta' / 'search_val.txt').read_text()
    assert run(root, '--per-class', 2).returncode == 0
    assert (root / 'meta' / 'search_val.txt').read_text() == first
    other = tmp_path / 'other'
    other.mkdir()
    assert run(root, '--per-class', 2, '--seed', 1, '--out-dir',
               other).returncode == 0
    assert (other / 'search_val.txt').read_text() != first


@pytest.mark.parametrize('args, message', [
    (('--per-class', 5), 'class n01: 5 images'),
    (('--per-class', 0), '--per-class: 0'),
    (('--per-class', 2, '--out-dir', '/nonexistent/x'),
     '--out-dir /nonexistent/x'),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    root = fake_imagenet(tmp_path / 'in', {'n01': 5, 'n02': 8})
    result = run(root, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (root / 'meta' / 'search_val.txt').exists()
