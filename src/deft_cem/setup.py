
from setuptools import find_packages, setup

PACKAGE = 'deft_cem'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/config', ['config/demonstrations.yaml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='DEFT maintainers',
    maintainer_email='deft@example.org',
    description=(
        'DEFT fine-tuning (Algorithm 1): grasp parameters xi, CEM / CMA-ES, '
        'runs and resume, rewards, and the episode orchestrator node.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'episode_node = deft_cem.episode_node:main',
            'deft_report = deft_cem.report:main',
            'deft_score = deft_cem.score_cli:main',
        ],
    },
)
