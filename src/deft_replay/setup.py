from setuptools import find_packages, setup

PACKAGE = 'deft_replay'

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
        'Episode bags of DEFT (rosbag2 MCAP format, writer and reader), the bag_player '
        'node (deft_play_bag) and offline replay evaluation (deft_replay_eval).'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bag_player = deft_replay.bag_player:main',
            'deft_play_bag = deft_replay.bag_player:main',
            'deft_replay_eval = deft_replay.replay_cli:main',
        ],
    },
)
