
from setuptools import find_packages, setup

PACKAGE = 'deft_sim'

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
        'Simulated tabletop world standing in for the robot, the hand and the '
        'RGB-D camera.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = deft_sim.sim_node:main',
            'deft_sim_labels = deft_sim.human_dataset:main',
        ],
    },
)
