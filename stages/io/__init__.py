"""Reading and writing: video files through ffmpeg, encoded images, HDF5 artifacts."""
