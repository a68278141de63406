"""Clustering algorithms of video features and their quality: FINCH on exact or approximate
first neighbours, spherical k-means, the partition a stage asks for, and NMI/AMI/ARI."""
