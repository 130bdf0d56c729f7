"""The package's shape: imports one way, no cycles, small modules."""
import ast
import os
import os.path as osp

import pytest

PACKAGE = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'nasbnn_mm')
MAX_LINES = 400
# Layers may import only from the layers listed after them; each entry is
# a module prefix under nasbnn_mm.
FORBIDDEN = {
    'models.layers': ('models.backbones', 'models.algorithms', 'engine',
                      'deploy', 'models.detection'),
    'models.backbones': ('models.algorithms', 'engine', 'deploy'),
    'deploy': ('models.algorithms', 'engine', 'models.supernet',
               'models.backbones.super_bnn'),
    'nas': ('models', 'engine', 'deploy', 'datasets'),
    'utils': ('models', 'engine', 'deploy', 'nas', 'datasets'),
    'ops': ('models', 'engine', 'deploy'),
}


def modules():
    """(dotted name under nasbnn_mm, path) of every module."""
    for folder, _, files in os.walk(PACKAGE):
        for file in sorted(files):
            if file.endswith('.py'):
                path = osp.join(folder, file)
                rel = osp.relpath(path, PACKAGE)[:-3].replace(os.sep, '.')
                yield rel[:-len('.__init__')] if rel.endswith(
                    '__init__') else rel, path


def package_imports(name, path):
    """(imported module under nasbnn_mm, node, in a function) per import."""
    tree = ast.parse(open(path).read())
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    is_package = path.endswith('__init__.py')
    base = name.split('.') if is_package else name.split('.')[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[:len(base) - node.level + 1]
                target = '.'.join(parts +
                                  ([node.module] if node.module else []))
                targets = [target] if node.module else [
                    '.'.join(parts + [a.name]) for a in node.names
                ]
            elif (node.module or '').startswith('nasbnn_mm'):
                targets = [node.module[len('nasbnn_mm.'):]]
            else:
                continue
        elif isinstance(node, ast.Import):
            targets = [
                a.name[len('nasbnn_mm.'):] for a in node.names
                if a.name.startswith('nasbnn_mm.')
            ]
        else:
            continue
        scope, in_function = parents.get(node), False
        while scope is not None:
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function = True
            scope = parents.get(scope)
        for target in targets:
            yield target.strip('.'), node, in_function


ALL = dict(modules())


def test_no_function_level_imports_of_the_package():
    found = [
        f'{name}:{node.lineno} imports {target}' for name, path in ALL.items()
        for target, node, in_function in package_imports(name, path)
        if in_function
    ]
    assert not found, found


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_imports_run_one_way(layer):
    found = [
        f'{name} imports {target}' for name, path in ALL.items()
        if name == layer or name.startswith(layer + '.')
        for target, _, _ in package_imports(name, path)
        for banned in FORBIDDEN[layer]
        if target == banned or target.startswith(banned + '.')
    ]
    assert not found, found


def test_no_import_cycle_between_modules():
    graph = {}
    for name, path in ALL.items():
        edges = set()
        for target, _, _ in package_imports(name, path):
            # `from .pkg import mod` names a module or a name in pkg.
            while target and target not in ALL:
                target = target.rpartition('.')[0]
            if target and target != name and not name.startswith(target + '.'):
                edges.add(target)
        graph[name] = edges
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 'open'
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 'done'

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # A package importing its own submodules is not a cycle.
    cycles = [
        c for c in cycles if not all(
            a.startswith(b + '.') or b.startswith(a + '.') or a == b
            for a, b in zip(c, c[1:]))
    ]
    assert not cycles, cycles


def test_modules_are_small():
    big = {
        name: n
        for name, path in ALL.items()
        if (n := len(open(path).read().splitlines())) > MAX_LINES
    }
    assert not big, big
