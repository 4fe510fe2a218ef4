from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'deft_hand_driver'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/config', sorted(glob('config/*.yaml'))),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='DEFT maintainers',
    maintainer_email='deft@example.org',
    description='Robot-hand configs, retargeting and the hand driver node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'hand_driver_node = deft_hand_driver.hand_driver_node:main',
            'emulated_dynamixel_bus = deft_hand_driver.emulated_bus:main',
            'bench_hand_bus = deft_hand_driver.bench_bus:main',
        ],
    },
)
