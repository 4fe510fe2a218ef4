
from setuptools import find_packages, setup

PACKAGE = 'deft_affordance'

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
    description='The DEFT affordance model f(object, task) and its inference node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'affordance_node = deft_affordance.affordance_node:main',
            'deft_train_affordance = deft_affordance.train_cli:main',
            'deft_eval_affordance = deft_affordance.eval_cli:main',
        ],
    },
)
