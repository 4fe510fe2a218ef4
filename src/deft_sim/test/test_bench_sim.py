"""The simulation benchmark runs every task end to end and reports what it measured."""

from deft_sim.bench_sim import measure
from deft_sim.tasks import TASK_SPECS


def test_measure_runs_every_task_and_split():
    m = measure(trials=1, width=160, height=120)
    assert m['episodes'] == 2 * len(TASK_SPECS)
    assert 0.0 < m['sim_episode_wall_s'] < 30.0
    assert set(m['sim_episode_wall_s_per_task']) == set(TASK_SPECS)
    assert all(0.0 < t < 30.0 for t in m['sim_episode_wall_s_per_task'].values())
    assert set(m['sim_scripted_success']) == {f'{t}/{s}' for t in TASK_SPECS
                                              for s in ('train', 'test')}
    # the nominal human grasps succeed on both splits; the pour needs its wrist turn in tau
    assert m['sim_scripted_success']['pick_cup/train'] == 1.0
    assert m['sim_scripted_success']['pick_spoon/test'] == 1.0
    assert m['sim_scripted_success']['pour_cup/train'] == 1.0


def test_task_checks_report_the_demo_and_every_cheat():
    from deft_sim.bench_sim import task_checks
    from deft_sim.task_checks import CHEATS
    lines = []
    out = task_checks(trials=1, progress=lines.append)
    assert set(out) == set(TASK_SPECS) and len(lines) == len(TASK_SPECS)
    for task, r in out.items():
        assert set(r['cheats']) == {c.name for c in CHEATS[task]}
        for per in [r['demo'], *r['cheats'].values()]:
            assert set(per) == {'train', 'test'}
            assert all(v['n'] == 1 and v['rate'] in (0.0, 1.0) for v in per.values())
    assert out['pick_cup']['demo']['train']['rate'] == 1.0
    assert out['pick_cup']['cheats']['open_hand']['train']['rate'] == 0.0
