from setuptools import find_packages, setup

PACKAGE = 'deft_policy'

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
        'The residual policy pi of DEFT (cVAE, and the MLP, transformer and '
        "direct-estimate ablations): training on a run's elite episodes "
        '(deft_train_policy) and the runtime that samples a residual for a new scene.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'deft_train_policy = deft_policy.train_cli:main',
        ],
    },
)
