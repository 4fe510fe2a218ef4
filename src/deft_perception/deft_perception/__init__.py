"""Segmentation node: prompt to mask, crop and 3D object points from depth and CameraInfo."""
