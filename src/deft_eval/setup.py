from setuptools import find_packages, setup

PACKAGE = 'deft_eval'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='DEFT maintainers',
    maintainer_email='deft@example.org',
    description=(
        'What measures the DEFT stack in the MuJoCo twin: the prior executed in '
        'simulation (sim_eval), the affordance recipe (deft_affordance_recipe), Table 1 '
        'and prior-latency benchmarks.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'deft_affordance_recipe = deft_eval.recipe:main',
        ],
    },
)
