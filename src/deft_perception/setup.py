
from setuptools import find_packages, setup

PACKAGE = 'deft_perception'

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
        'Segmentation node: prompt to mask, crop and 3D object points from '
        'depth and CameraInfo.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'perception_node = deft_perception.perception_node:main',
        ],
    },
)
