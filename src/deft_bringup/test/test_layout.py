"""The workspace's layout: one capability a package, dependencies one way, no cycles, no giants.

Read from the source tree (no import of the packages): every `import` and `from ... import` of
every module, wherever it stands (a lazy import in a function is a dependency too).
"""

import ast
from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

SRC = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent.name for p in SRC.glob('deft_*/package.xml')
                  if (p.parent / 'setup.py').is_file())
# Layers, bottom to top: a package may import its own layer's packages only where
# SAME_LAYER allows it, and lower layers freely; never a higher layer.
LAYERS = [
    ('deft_common', 'deft_interfaces'),
    ('deft_perception', 'deft_hand_driver', 'deft_arm', 'deft_sim', 'deft_affordance',
     'deft_policy', 'deft_replay'),
    ('deft_cem',),
    ('deft_eval', 'deft_bringup', 'deft_rqt'),
]
# Imports within the middle layer (each points one way: the pairs form no cycle).
SAME_LAYER = {
    ('deft_sim', 'deft_hand_driver'),         # the twin's hand follows the hand's config
    ('deft_affordance', 'deft_hand_driver'),  # the prior retargets MANO to the robot hand
    ('deft_affordance', 'deft_perception'),   # the prior asks perception for the object
    ('deft_policy', 'deft_affordance'),       # phi(I0) uses the shared image encoders
    ('deft_replay', 'deft_affordance'),       # replay recomputes the embedding reward
    ('deft_replay', 'deft_perception'),       # replay re-segments recorded frames
}
MAX_FILE_LINES = 500
MAX_PACKAGE_SHARE = 0.25


def layer_of(package):
    return next(k for k, layer in enumerate(LAYERS) if package in layer)


def modules(package, tests=False):
    """Yield (dotted module name, path) of a package's Python files (its tests if asked)."""
    root = SRC / package
    for path in sorted((root / ('test' if tests else package)).rglob('*.py')):
        rel = path.relative_to(root)
        dotted = '.'.join(rel.with_suffix('').parts)
        yield dotted.removesuffix('.__init__'), path


def imports(path):
    """Return the dotted names a file imports (`from a.b import c` gives a.b and a.b.c)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f'{node.module}.{a.name}' for a in node.names)
    return {name for name in out if name.startswith('deft_')}


def all_modules():
    return {name: path for pkg in PACKAGES for name, path in modules(pkg)}


def test_every_package_is_in_a_layer():
    placed = {p for layer in LAYERS for p in layer}
    assert set(PACKAGES) <= placed, f'packages in no layer: {set(PACKAGES) - placed}'
    for a, b in SAME_LAYER:
        assert layer_of(a) == layer_of(b)


@pytest.mark.parametrize('package', PACKAGES)
def test_imports_point_down(package):
    wrong = []
    for name, path in modules(package):
        for target in imports(path):
            other = target.split('.')[0]
            if other in (package, 'deft_interfaces') or other not in PACKAGES:
                continue
            below = layer_of(other) < layer_of(package)
            allowed = (package, other) in SAME_LAYER
            if not (below or allowed):
                wrong.append(f'{name} imports {target}')
    assert not wrong, 'imports that point up or sideways:\n' + '\n'.join(sorted(set(wrong)))


@pytest.mark.parametrize('package', PACKAGES)
def test_tests_import_no_package_above(package):
    """A package's tests may use lower packages, never one that depends on it."""
    wrong = []
    for _, path in modules(package, tests=True):
        for target in imports(path):
            other = target.split('.')[0]
            if other in PACKAGES and other != package and \
                    layer_of(other) > layer_of(package):
                wrong.append(f'{path.name} imports {target}')
    assert not wrong, '\n'.join(sorted(set(wrong)))


def test_no_module_imports_itself_back():
    mods = all_modules()
    graph = {}
    for name, path in mods.items():
        graph[name] = {t for t in imports(path) if t in mods and t != name}
    # Tarjan's strongly connected components: a component of two or more modules is a cycle.
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f'import cycles: {cycles}'


@pytest.mark.parametrize('package', PACKAGES)
def test_package_xml_declares_what_the_code_imports(package):
    xml = ET.parse(SRC / package / 'package.xml').getroot()
    declared = {e.text for tag in ('depend', 'exec_depend') for e in xml.iter(tag)}
    used = {t.split('.')[0] for _, path in modules(package) for t in imports(path)}
    missing = sorted(used - declared - {package})
    assert not missing, f'{package}/package.xml lacks exec_depend {missing}'


def test_no_file_is_a_giant():
    big = []
    for pkg in PACKAGES:
        for tests in (False, True):
            for _, path in modules(pkg, tests):
                n = len(path.read_text().splitlines())
                if n > MAX_FILE_LINES:
                    big.append(f'{path.relative_to(SRC)}: {n} lines')
    assert not big, f'files over {MAX_FILE_LINES} lines:\n' + '\n'.join(big)


def test_no_package_holds_more_than_a_quarter_of_the_code():
    lines = {pkg: sum(len(p.read_text().splitlines()) for _, p in modules(pkg))
             for pkg in PACKAGES}
    total = sum(lines.values())
    over = {p: round(n / total, 3) for p, n in lines.items() if n > MAX_PACKAGE_SHARE * total}
    assert not over, f'packages over {MAX_PACKAGE_SHARE:.0%} of {total} lines: {over}'


def test_bringup_only_brings_up():
    """deft_bringup holds the graph, its launch and the tools that start it: no evaluation."""
    names = {name.split('.')[-1] for name, _ in modules('deft_bringup')}
    assert names <= {'deft_bringup', 'graph', 'runner', 'demo', 'client', 'testing',
                     'launch_common', 'bench_restart', 'bench_sim_graph'}, names
