from setuptools import find_packages, setup

PACKAGE = 'deft_rqt'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml', 'plugin.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='DEFT maintainers',
    maintainer_email='deft@example.org',
    description=(
        "The operator's rqt plugin and standalone panel (deft_panel): run_episode and "
        'fine_tune goals, live feedback and reward curve, cancel, scoring and scene resets.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'deft_panel = deft_rqt.main:main',
        ],
    },
)
