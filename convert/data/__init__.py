"""Image data readers: image folders, class-per-folder datasets, video files, calibration sources."""
