from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'deft_bringup'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/config', sorted(glob('config/*.yaml') + glob('config/*.xml'))),
        ('share/' + PACKAGE + '/launch', sorted(glob('launch/*.launch.py'))),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='DEFT maintainers',
    maintainer_email='deft@example.org',
    description=(
        'Launch files, parameters and the one graph description of the DEFT '
        'stack.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'deft_run = deft_bringup.runner:main',
            'deft_demo = deft_bringup.demo:main',
        ],
    },
)
